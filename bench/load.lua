-- The wrk script of the benchmark harness (bench/http.py runs it; one wrk thread).
-- Arguments: method, path, body, expected status, first number, a file of bodies (or ""), then
-- "Name: value" headers. "{n}" in the path or body becomes a number unique to the request (first,
-- first + 1, ...), "{words}" in the body forty words picked by that number, so no two submissions
-- are alike, and "{body}" the file's line picked by that number (lines are JSON string contents).
-- done() prints one JSON line: requests, duration, p50/p99 latency (microseconds), transport
-- errors, responses with another status than expected, how many numbers were handed out, and how
-- many requests were sent (completed or not: what the server worked on).

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

local WORDS = {
   "council", "town", "centre", "growth", "decline", "industry", "jobs", "housing", "transport",
   "skills", "funding", "community", "high", "street", "investment", "local", "people", "plan",
   "future", "report", "evidence", "river", "library", "market", "school", "bridge", "park",
}

local function words(n)
   local picked = {}
   for i = 1, 40 do
      picked[i] = WORDS[(n * 7 + i * (n % 5 + 1) + math.floor(n / 13) * i * i) % #WORDS + 1]
   end
   return table.concat(picked, " ")
end

function init(args)
   method, path, body, expected, first = args[1], args[2], args[3], tonumber(args[4]), tonumber(args[5])
   bodies = {}
   if args[6] ~= "" then
      for line in io.lines(args[6]) do
         table.insert(bodies, line)
      end
   end
   headers = {}
   for i = 7, #args do
      local name, value = args[i]:match("^([^:]+):%s*(.*)$")
      headers[name] = value
   end
   issued, unexpected, sent = 0, 0, 0
   if not (path:find("{n}", 1, true) or body:find("{", 1, true)) then
      fixed = wrk.format(method, path, headers, body ~= "" and body or nil)
   end
end

function request()
   sent = sent + 1
   if fixed then
      return fixed
   end
   local n = first + issued
   issued = issued + 1
   local text = body:gsub("{words}", words(n))
   if #bodies > 0 then
      -- a function, so that "%" in a body is not read as a capture reference
      text = text:gsub("{body}", function() return bodies[n % #bodies + 1] end)
   end
   text = text:gsub("{n}", tostring(n))
   return wrk.format(method, (path:gsub("{n}", tostring(n))), headers, text ~= "" and text or nil)
end

function response(status, _, _)
   if status ~= expected then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, _)
   local bad, handed, all = 0, 0, 0
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("unexpected")
      handed = handed + thread:get("issued")
      all = all + thread:get("sent")
   end
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, '
         .. '"unexpected": %d, "issued": %d, "sent": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect + e.read + e.write + e.timeout, bad, handed, all))
end
