package main

import (
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// publishRecords puts the dns-persist-01 record value at every base.
func publishRecords(bases []string, value string) error {
	for _, b := range bases {
		if err := acmetest.SetTXT(record.Name(b), value); err != nil {
			return err
		}
	}
	return nil
}

// unpublishRecords removes what publishRecords put, after a run.
func unpublishRecords(bases []string) {
	for _, b := range bases {
		acmetest.SetTXT(record.Name(b))
	}
}
