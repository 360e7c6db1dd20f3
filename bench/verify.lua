-- wrk script for bench/registry: POST /api/v1/cards/{cardNumber}/verify with a random existing
-- card per request, so reads spread over the whole card and resident tables instead of hitting
-- one cached row.
--   wrk --latency -t2 -c16 -d20s -s bench/verify.lua http://127.0.0.1:PORT -- TOKEN CARDS
-- bench/registry issues the cards B00000000001 … B<CARDS> (12 characters), all active.
-- done() prints one line for the script to parse:
--   QY_RESULT <requests/s> <p50 ms> <p99 ms> <non-2xx responses> <socket errors>

local threads = 0

-- Runs in the main state once per thread before it starts: a distinct seed for each thread, so
-- two threads do not verify the same sequence of cards.
function setup(thread)
   threads = threads + 1
   thread:set("thread_number", threads)
end

local token, cards, headers

function init(args)
   token = args[1]
   cards = tonumber(args[2])
   if token == nil or cards == nil or cards < 1 then
      error("usage: wrk … -s verify.lua URL -- TOKEN CARDS")
   end
   math.randomseed(os.time() * 1000 + (thread_number or 0))
   headers = { ["Authorization"] = "Bearer " .. token }
end

function request()
   local path = string.format("/api/v1/cards/B%011d/verify", math.random(cards))
   -- An empty body makes wrk send Content-Length: 0, which a POST without a body should carry.
   return wrk.format("POST", path, headers, "")
end

function done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local errors = summary.errors
   io.write(string.format("QY_RESULT %.1f %.2f %.2f %d %d\n",
      summary.requests / seconds,
      latency:percentile(50) / 1000,
      latency:percentile(99) / 1000,
      errors.status,
      errors.connect + errors.read + errors.write + errors.timeout))
end
