package payload_test

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/syncfanout/syncfanout/internal/payload"
)

func TestJSONable(t *testing.T) {
	v := map[any]any{
		int8(1): []byte("text"),
		"bin":   []byte{0xff, 0x00},
		"list":  []any{math.NaN(), float32(math.Inf(1)), 2.5},
		"inner": map[string]any{"b": []byte{0xfe}},
	}
	for _, tc := range []struct{ prefix, want string }{
		{"", `{"1":"text","bin":"/wA=","inner":{"b":"/g=="},"list":["NaN","+Inf",2.5]}`},
		{"base64:", `{"1":"text","bin":"base64:/wA=","inner":{"b":"base64:/g=="},"list":["NaN","+Inf",2.5]}`},
	} {
		in := map[any]any{}
		for k, e := range v {
			in[k] = e
		}
		// Fresh nested values per case: JSONable changes them in place.
		in["list"] = []any{math.NaN(), float32(math.Inf(1)), 2.5}
		in["inner"] = map[string]any{"b": []byte{0xfe}}
		b, err := json.Marshal(payload.JSONable(in, tc.prefix))
		if err != nil {
			t.Fatalf("prefix %q: %v", tc.prefix, err)
		}
		if string(b) != tc.want {
			t.Errorf("prefix %q:\n got %s\nwant %s", tc.prefix, b, tc.want)
		}
	}
}
