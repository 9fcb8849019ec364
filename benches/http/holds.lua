-- wrk script: every request asks for the best available seat in one of 20
-- sections, in turn, so each one is a new durable hold.
-- Signed in as one fan (run.sh mints the token).
local n = 0
local auth = "Bearer " .. os.getenv("BOXOFFICE_BENCH_TOKEN")
request = function()
  n = n + 1
  local body = string.format('{"section":"S%02d","quantity":1}', (n % 20) + 1)
  return wrk.format("POST", "/v1/events/bench/holds",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end
