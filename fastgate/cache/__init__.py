"""The exact-match response cache: keys that never mix tenants, stored answers, stream replay."""
