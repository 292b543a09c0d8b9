package strictjson

import (
	"strings"
	"testing"
)

type inner struct {
	Name  string `json:"name"`
	Count int    `json:"count,omitempty"`
}

type embedded struct {
	CA string `json:"ca,omitempty"`
}

type request struct {
	embedded
	Switch bool              `json:"switch,omitempty"`
	Items  []inner           `json:"items,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Free   any               `json:"free,omitempty"`
}

func TestUnmarshalRefusesWhatEncodingJSONLetsPass(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		body, refusal string
	}{
		{`{"switch":true,"ca":"https://ca.test/dir","items":[{"name":"a","count":2}],"labels":{"Any":"x"},"free":{"Whatever":[1]}}`, ""},
		{`{}`, ""},
		{`{"Switch":true}`, `unknown field "Switch"`},
		{`{"items":[{"NAME":"a"}]}`, `items: unknown field "NAME"`},
		{`{"switch":true,"switch":false}`, `"switch" is given twice`},
		{`{"items":[{"name":"a","name":"b"}]}`, `"name" is given twice`},
		{`{"switch":true} {"switch":false}`, "more follows"},
		{`{"switch":true}x`, "more follows"},
		{`{"swtich":true}`, `unknown field "swtich" (the fields are ca, free, items, labels, switch)`},
		{`[]`, "cannot unmarshal"},
	} {
		var req request
		err := Unmarshal([]byte(c.body), &req)
		switch {
		case c.refusal == "" && err != nil:
			t.Errorf("%s: %v", c.body, err)
		case c.refusal != "" && (err == nil || !strings.Contains(err.Error(), c.refusal)):
			t.Errorf("%s: %v, want a refusal saying %q", c.body, err, c.refusal)
		}
	}
	var req request
	if err := Unmarshal([]byte(`{"ca":"u","items":[{"name":"a"}],"switch":true}`), &req); err != nil || req.CA != "u" || !req.Switch || len(req.Items) != 1 || req.Items[0].Name != "a" {
		t.Errorf("decoded %+v, %v", req, err)
	}
}
