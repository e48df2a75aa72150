-- A module of the plugin, loaded with require("lib.util").
local M = {}
function M.double(x) return 2 * x end
return M
