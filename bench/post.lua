-- wrk script: POST the same JSON body on every request.
-- Usage: wrk -s bench/post.lua -H "Content-Type: application/json" <url> -- <body-file>
-- The body is read once per thread in init(), before wrk formats the request, so wrk sends a
-- pre-built request and no Lua runs per request (a `request` or `response` function here would
-- make wrk call into Lua for every request and slow the load generator down).
function init(args)
   local path = args[1]
   if path == nil then
      error("post.lua: pass the body file after --")
   end
   local file = assert(io.open(path, "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
end
