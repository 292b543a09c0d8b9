// Package strictjson decodes JSON as strictly as a request that changes
// something should be read: one value and nothing after it, and objects
// whose keys are the fields of the Go type they decode into, spelt
// exactly and each given once. encoding/json alone matches keys whatever
// their case, takes the last of a key given twice, and ignores what
// follows the value.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Unmarshal decodes data into v, refusing what encoding/json lets pass.
func Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := check(dec, reflect.TypeOf(v)); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more follows the JSON value")
	}
	strict := json.NewDecoder(bytes.NewReader(data))
	strict.DisallowUnknownFields()
	return strict.Decode(v)
}

// check reads one value from dec, which t is to hold.
func check(dec *json.Decoder, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		fields := fieldsOf(t)
		seen := make(map[string]bool)
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return err
			}
			name := key.(string)
			if seen[name] {
				return fmt.Errorf("field %q is given twice", name)
			}
			seen[name] = true
			field, ok := fields[name]
			switch {
			case t != nil && t.Kind() == reflect.Map:
				field = t.Elem()
			case fields != nil && !ok:
				return fmt.Errorf("unknown field %q (the fields are %s)", name, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			}
			if err := check(dec, field); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for dec.More() {
			if err := check(dec, elem); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// fieldsOf maps the JSON names of a struct's fields to their types, those
// of embedded structs included; nil when t is no struct (a map, any),
// whose keys are free.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	fields := make(map[string]reflect.Type)
	for _, f := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || f.Anonymous && name == "" || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}
