// Starts Portkey's gateway (node build/start-server.js) listening on 127.0.0.1 only.
// Its server calls listen(port) with no host, which binds every interface; the benchmark's
// servers stay on loopback, so the host is filled in here before the gateway starts.
// Usage: node bench/portkey_loopback.mjs <path to build/start-server.js> --port=N --headless
import net from "node:net";
import { pathToFileURL } from "node:url";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" && (args[1] === undefined || typeof args[1] === "function")) {
    args.splice(1, args[1] === undefined ? 1 : 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};

const entry = process.argv[2];
process.argv.splice(2, 1); // the gateway reads its own options from process.argv.slice(2)
await import(pathToFileURL(entry).href);
