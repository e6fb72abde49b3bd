package wire

import "encoding/json"

// Reply is what the server writes on a bidirectional stream: the answer to
// the command with ID (its result or Error), or a Push (ID 0). The zero
// Reply, {}, is a ping.
type Reply struct {
	ID            uint32               `json:"id,omitempty"`
	Error         *Error               `json:"error,omitempty"`
	Push          *Push                `json:"push,omitempty"`
	Connect       *ConnectResult       `json:"connect,omitempty"`
	Subscribe     *SubscribeResult     `json:"subscribe,omitempty"`
	Unsubscribe   *struct{}            `json:"unsubscribe,omitempty"`
	Publish       *struct{}            `json:"publish,omitempty"`
	Presence      *PresenceResult      `json:"presence,omitempty"`
	PresenceStats *PresenceStatsResult `json:"presence_stats,omitempty"`
	History       *HistoryResult       `json:"history,omitempty"`
	RPC           *RPCResult           `json:"rpc,omitempty"`
	Refresh       *RefreshResult       `json:"refresh,omitempty"`
	SubRefresh    *SubRefreshResult    `json:"sub_refresh,omitempty"`
}

// Error is a command's failure.
type Error struct {
	Code      uint32 `json:"code"`
	Message   string `json:"message,omitempty"`
	Temporary bool   `json:"temporary,omitempty"`
}

// ConnectResult answers connect; on the unidirectional transport it is the
// first push. Session and Node tell centrifuge-js where to send its
// emulation requests.
type ConnectResult struct {
	Client  string                     `json:"client,omitempty"`
	Version string                     `json:"version,omitempty"`
	Expires bool                       `json:"expires,omitempty"`
	TTL     uint32                     `json:"ttl,omitempty"`
	Data    Raw                        `json:"data,omitempty"`
	Subs    map[string]SubscribeResult `json:"subs,omitempty"`
	Ping    uint32                     `json:"ping,omitempty"`
	Pong    bool                       `json:"pong,omitempty"`
	Session string                     `json:"session,omitempty"`
	Node    string                     `json:"node,omitempty"`
	Time    int64                      `json:"time,omitempty"`
}

// SubscribeResult answers subscribe, with the publications recovered.
type SubscribeResult struct {
	Expires       bool          `json:"expires,omitempty"`
	TTL           uint32        `json:"ttl,omitempty"`
	Recoverable   bool          `json:"recoverable,omitempty"`
	Epoch         string        `json:"epoch,omitempty"`
	Publications  []Publication `json:"publications,omitempty"`
	Recovered     bool          `json:"recovered,omitempty"`
	Offset        uint64        `json:"offset,omitempty"`
	Positioned    bool          `json:"positioned,omitempty"`
	Data          Raw           `json:"data,omitempty"`
	WasRecovering bool          `json:"was_recovering,omitempty"`
}

// ClientInfo describes a client, in presence and in publications.
type ClientInfo struct {
	User     string `json:"user,omitempty"`
	Client   string `json:"client,omitempty"`
	ConnInfo Raw    `json:"conn_info,omitempty"`
	ChanInfo Raw    `json:"chan_info,omitempty"`
}

// PresenceResult answers presence, by client id.
type PresenceResult struct {
	Presence map[string]ClientInfo `json:"presence"`
}

// PresenceStatsResult answers presence_stats.
type PresenceStatsResult struct {
	NumClients uint32 `json:"num_clients"`
	NumUsers   uint32 `json:"num_users"`
}

// HistoryResult answers history.
type HistoryResult struct {
	Publications []Publication `json:"publications,omitempty"`
	Epoch        string        `json:"epoch,omitempty"`
	Offset       uint64        `json:"offset,omitempty"`
}

// RPCResult answers rpc.
type RPCResult struct {
	Data Raw `json:"data,omitempty"`
}

// RefreshResult answers refresh.
type RefreshResult struct {
	Client  string `json:"client,omitempty"`
	Version string `json:"version,omitempty"`
	Expires bool   `json:"expires,omitempty"`
	TTL     uint32 `json:"ttl,omitempty"`
}

// SubRefreshResult answers sub_refresh.
type SubRefreshResult struct {
	Expires bool   `json:"expires,omitempty"`
	TTL     uint32 `json:"ttl,omitempty"`
}

// Publication is one message of a channel, at Offset in its history.
type Publication struct {
	Data   Raw               `json:"data,omitempty"`
	Info   *ClientInfo       `json:"info,omitempty"`
	Offset uint64            `json:"offset,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// Push is a message the server sends unasked: inside a Reply on the
// bidirectional transport, bare on the unidirectional one. One of its
// fields after Channel is set.
type Push struct {
	Channel     string           `json:"channel,omitempty"`
	Pub         *Publication     `json:"pub,omitempty"`
	Join        *JoinLeave       `json:"join,omitempty"`
	Leave       *JoinLeave       `json:"leave,omitempty"`
	Unsubscribe *UnsubscribePush `json:"unsubscribe,omitempty"`
	Message     *MessagePush     `json:"message,omitempty"`
	Subscribe   *SubscribeResult `json:"subscribe,omitempty"`
	Connect     *ConnectResult   `json:"connect,omitempty"`
	Disconnect  *DisconnectPush  `json:"disconnect,omitempty"`
	Refresh     *RefreshResult   `json:"refresh,omitempty"`
}

// JoinLeave is a join or leave push.
type JoinLeave struct {
	Info ClientInfo `json:"info"`
}

// UnsubscribePush tells the client the server unsubscribed it.
type UnsubscribePush struct {
	Code   uint32 `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// MessagePush is an asynchronous message to the client.
type MessagePush struct {
	Data Raw `json:"data,omitempty"`
}

// DisconnectPush tells the client why the server closes its connection.
type DisconnectPush struct {
	Code   uint32 `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// Ping is the server's ping, as a Reply or a Push: an empty object.
var Ping = []byte("{}")

// AppendJSON appends v (a Reply or a Push) as one line of JSON.
// Embedded payloads must be valid JSON (those decoded here are); the
// encoding never holds a raw newline.
func AppendJSON(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// Error implements error, so that hooks can return an *Error.
func (e *Error) Error() string {
	return "centrifugo: error " + itoa(e.Code) + ": " + e.Message
}

func itoa(n uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
