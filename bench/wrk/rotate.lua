-- wrk script for bench/serve.py: one endpoint, customer ids rotated, bearer key sent.
--
-- Environment (set by bench/loadgen.py):
--   BENCH_METHOD  GET | POST                (default GET)
--   BENCH_PATH    path template; each "{id}" is replaced by the next customer id, "{n}" by a
--                 number unique to the request, "{k}" by 1, 2, ... within the request
--   BENCH_BODY    body template (POST), same placeholders; "" for none
--   BENCH_TOKEN   API key sent as "Authorization: Bearer <token>" ("" for none)
--   BENCH_IDS     file with one customer id per line (shuffled by the caller)
--   BENCH_NONCE   a string unique to this run, so "{n}" never repeats across runs
-- At the end it prints one line "BENCH_JSON {...}" with counts and latency percentiles (us).

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local ids = {}
local counter = 0
local method, path_tpl, body_tpl, nonce
local headers = {}

local function next_id()
  counter = counter + 1
  return ids[(counter % #ids) + 1]
end

local function fill(template, n)
  -- every "{id}" takes the next customer id (a batch body names many customers);
  -- "{n}" is the request's unique number, "{k}" the occurrence's index within the request
  local k = 0
  local out = template:gsub("{id}", next_id)
  out = out:gsub("{n}", n)
  out = out:gsub("{k}", function() k = k + 1; return tostring(k) end)
  return out
end

function init(args)
  method = os.getenv("BENCH_METHOD") or "GET"
  path_tpl = os.getenv("BENCH_PATH") or "/"
  body_tpl = os.getenv("BENCH_BODY") or ""
  nonce = os.getenv("BENCH_NONCE") or "0"
  local token = os.getenv("BENCH_TOKEN") or ""
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  if body_tpl ~= "" then headers["Content-Type"] = "application/json" end
  local file = os.getenv("BENCH_IDS")
  if file and file ~= "" then
    for line in io.lines(file) do
      if line ~= "" then ids[#ids + 1] = line end
    end
  end
  if #ids == 0 then ids[1] = "none" end
  -- threads start at different places in the (shuffled) id list
  counter = (tid or 0) * math.floor(#ids / 7 + 1)
end

local requests_made = 0

function request()
  requests_made = requests_made + 1
  local n = nonce .. "-" .. (tid or 0) .. "-" .. requests_made
  local body = nil
  if body_tpl ~= "" then body = fill(body_tpl, n) end
  return wrk.format(method, fill(path_tpl, n), headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
