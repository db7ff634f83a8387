-- Rotate through many VENs so every request is a distinct VEN polling.
-- POLL_MODE: "bearer" (GET with a random VEN's token), "etag" (the same with that VEN's
-- current ETag in If-None-Match: a conditional poll answered 304) or "oadr" (an OpenADR
-- 2.0b oadrPoll POST for a random venID, body from POLL_TEMPLATE).
local lines = {}
local path = os.getenv("POLL_PATH") or "/openadr3/3.1.0/events"
local mode = os.getenv("POLL_MODE") or "bearer"
local template = nil
local expected = mode == "etag" and 304 or 200

init = function(args)
  for line in io.lines(args[1]) do
    local token, etag = line:match("^(%S+)%s*(%S*)$")
    if token then
      lines[#lines + 1] = { token = token, etag = etag }
    end
  end
  if mode == "oadr" then
    local file = io.open(os.getenv("POLL_TEMPLATE"), "r")
    template = file:read("*a")
    file:close()
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local entry = lines[math.random(#lines)]
  if mode == "oadr" then
    local body = template:gsub("VENIDPLACEHOLDER", entry.token)
    return wrk.format("POST", path, { ["Content-Type"] = "application/xml" }, body)
  end
  local headers = { ["Authorization"] = "Bearer " .. entry.token }
  if mode == "etag" then
    headers["If-None-Match"] = entry.etag
  end
  return wrk.format("GET", path, headers)
end

response = function(status, headers, body)
  if status ~= expected then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
