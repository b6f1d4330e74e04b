-- wrk script: POST /v1/incidents with a valid, distinct initial report on every request.
-- Each request gets its own Idempotency-Key and its own address, and an occurrence time spread
-- over the past year (discovered a minute ago, so never a late report), so neither the
-- idempotency check nor the duplicate lookup folds requests together.
-- Key: environment BENCH_KEY (sent as "Authorization: Bearer ..."); empty sends no header.
-- At the end prints one line "BENCH_JSON {...}" with the status counts and latency percentiles.

local townships = {"349901001", "349901002"}
for n = 1, 10 do townships[#townships + 1] = string.format("3499011%02d", n) end
local categories = {"flood", "geological", "traffic_accident", "fire", "flood"}
local key = os.getenv("BENCH_KEY") or ""
local exercise = os.getenv("BENCH_EXERCISE") or "false"
local threads = {}
local counter = 0
local thread_id = 0
created, client_errors, server_errors, other = 0, 0, 0, 0

function setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
end

local function iso(seconds)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", seconds)
end

function request()
  counter = counter + 1
  local now = os.time()
  local occurred = now - math.random(3600, 360 * 86400)
  local tag = string.format("%d-%d-%d-%d", thread_id, counter, now, math.random(1, 1000000000))
  local body = string.format(
    '{"category":"%s","township_code":"%s","title":"压测事件 %s",' ..
    '"description":"压测数据：河水上涨，部分道路积水，村民正在转移。",' ..
    '"occurred_at":"%s","discovered_at":"%s",' ..
    '"location":{"address":"压测地点 %s 号"},' ..
    '"casualties":{"deaths":0,"injured":%d,"missing":0,"trapped":0},' ..
    '"affected":{"people_affected":%d,"direct_loss_cny":1000},"people_involved":%d,' ..
    '"measures_taken":"已组织人员转移，设置警戒。","needs":"需要沙袋和抽水泵。",' ..
    '"reporter":{"name":"压测报送人","phone":"13900000000"},' ..
    '"approver":{"name":"压测审签人","phone":"13900000001"},"source":"压测","exercise":%s}',
    categories[math.random(#categories)], townships[math.random(#townships)], tag,
    iso(occurred), iso(now - 60), tag, math.random(0, 8), math.random(0, 2000),
    math.random(0, 5), exercise)
  local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = "wrk-" .. tag}
  if key ~= "" then headers["Authorization"] = "Bearer " .. key end
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status >= 500 then server_errors = server_errors + 1
  elseif status >= 400 then client_errors = client_errors + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local counts = {created = 0, client_errors = 0, server_errors = 0, other = 0}
  for _, thread in ipairs(threads) do
    for name, n in pairs(counts) do counts[name] = n + (thread:get(name) or 0) end
  end
  local parts = {}
  for name, n in pairs(counts) do parts[#parts + 1] = string.format('"%s":%d', name, n) end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"seconds":%.3f,"socket_errors":%d,"statuses":{%s},' ..
    '"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ","), latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
