package redis

import (
	"embed"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

func scriptSource(name string) string {
	src, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("redis backend: missing script " + name)
	}
	return string(src)
}

func loadScript(name string) *goredis.Script {
	return goredis.NewScript(scriptSource(name))
}

// The Lua scripts, one per file in lua/. Each touches keys of one hash slot
// only, all passed in KEYS, so they run on Redis Cluster. Script.Run sends
// EVALSHA and falls back to EVAL when the server does not have the script
// cached (after a restart, on a new cluster node).
var (
	scriptHeartbeat = loadScript("heartbeat")
	scriptRoute     = loadScript("route")
	scriptRegister  = loadScript("register")
	scriptRemove    = loadScript("remove")
	scriptTopic     = loadScript("topic")
	scriptCAS       = loadScript("cas")
	scriptRecreate  = loadScript("recreate")
	scriptPublish   = loadScript("publish")
	scriptSubscribe = loadScript("subscribe")
	scriptReplay    = loadScript("replay")
	scriptWake      = loadScript("wake")
	scriptMarks     = loadScript("marks")
	scriptClaimScan = loadScript("claimscan")
	scriptRefresh   = loadScript("refresh")
	scriptHistory   = loadScript("history")

	scriptPresenceAdd    = loadScript("presence_add")
	scriptPresenceRemove = loadScript("presence_remove")
	scriptPresenceRead   = loadScript("presence_read")
)

// wakeSrc is the wake script's source, for pipelines (EVAL: a pipeline
// cannot fall back from EVALSHA).
var wakeSrc = scriptSource("wake")
