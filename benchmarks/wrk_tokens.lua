-- Rotate through many VEN bearer tokens so every request is a distinct VEN polling.
local tokens = {}
local path = os.getenv("POLL_PATH") or "/openadr3/3.1.0/events"

init = function(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local token = tokens[math.random(#tokens)]
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

response = function(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
