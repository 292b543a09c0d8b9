package judge

import (
	"errors"
	"slices"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// Plan is what the names of a certificate need from the records: one base
// domain per record, and whether each must allow wildcards.
type Plan struct {
	Names []string
	Bases []string
	// Wildcard is set for a base whose wildcard is among the names.
	Wildcard map[string]bool
	// Plain is set for a base that is itself among the names, not only
	// its wildcard.
	Plain map[string]bool
	// Under holds, for each base, the names it serves: itself and its
	// wildcard, as given.
	Under map[string][]string
}

// PlanNames reads names. A wildcard *.example.com and example.com share
// the record at _validation-persist.example.com, which then needs
// policy=wildcard.
func PlanNames(names []string) (Plan, error) {
	plan := Plan{Names: names, Wildcard: make(map[string]bool), Plain: make(map[string]bool), Under: make(map[string][]string)}
	if len(names) == 0 {
		return plan, errors.New("no domain names to obtain a certificate for")
	}
	for _, name := range names {
		base, wildcard, err := record.BaseDomain(name)
		if err != nil {
			return plan, err
		}
		if _, seen := plan.Wildcard[base]; !seen {
			plan.Bases = append(plan.Bases, base)
		}
		plan.Wildcard[base] = plan.Wildcard[base] || wildcard
		plan.Plain[base] = plan.Plain[base] || !wildcard
		plan.Under[base] = append(plan.Under[base], name)
	}
	slices.Sort(plan.Bases)
	return plan, nil
}
