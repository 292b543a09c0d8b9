package persist

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// The account's deliberate changes, as `caddy persist account` and POST
// /persist/account/ run them on a config: which accounts they change, and
// what they report. The changes themselves are the account keeper's
// (internal/account).

// AccountChange is what an account command did to one ACME account. The
// `caddy persist account` commands print it, and POST /persist/account/
// returns an array of them.
type AccountChange struct {
	// Action is the command: register, rollover, replace or import.
	Action string `json:"action"`
	// CADirectory is the directory URL of the account's CA.
	CADirectory string `json:"ca_directory"`
	// Email is the email the issuers give the account, if any; with the
	// CA it says where the account is stored.
	Email string `json:"email,omitempty"`
	// Draft is the dns-persist-01 draft the CA speaks, which says
	// whether a new key changes the records.
	Draft string `json:"draft"`
	// AccountURL is the account orders use after the command.
	AccountURL string `json:"account_url"`
	// State is where the change stands; see the accountState constants.
	State string `json:"state"`
	// Registered is set when this run registered the replacement.
	Registered bool `json:"registered,omitempty"`
	// ReplacementURL is the replacement account, before the switch to it.
	ReplacementURL string `json:"replacement_account_url,omitempty"`
	// OldAccountURL is the replaced account, after the switch.
	OldAccountURL string `json:"old_account_url,omitempty"`
	// Records are the records to publish: after a -02 rollover, those of
	// the new key; for a replacement, its own (checked, when a switch
	// is refused because they do not pass yet).
	Records []RecordReport `json:"records,omitempty"`
	// Remove are the records of a deactivated account, as zone file
	// lines: they no longer authorize anything, and may go.
	Remove []string `json:"remove,omitempty"`
	// Import, for an import, is where the account came from and went.
	Import *AccountImport `json:"import,omitempty"`
}

// AccountImport is what an import did besides the account.
type AccountImport struct {
	// Client is the ACME client whose folder held the account.
	Client string `json:"client"`
	// Folder is the account's folder.
	Folder string `json:"folder"`
	// StoredAt says which storage holds the account, and where in it.
	StoredAt string `json:"stored_at"`
	// AccountKey is set when the config's account_key is the account's
	// key: the issuer used the account already, and the stored copy
	// serves `acme` issuers and later runs.
	AccountKey bool `json:"account_key,omitempty"`
}

// The states of an AccountChange.
const (
	// stateRolledOver: the account has a new key.
	stateRolledOver = "rolled-over"
	// stateResumed: a rollover an earlier run left unfinished is
	// complete, and the account has its new key.
	stateResumed = "resumed"
	// statePending: the replacement is registered; orders use the
	// current account until the switch.
	statePending = "pending"
	// stateNotSwitched: the switch was asked for, and refused, because
	// the replacement's records do not pass everywhere yet.
	stateNotSwitched = "not-switched"
	// stateSwitched: orders use the replacement; the old account still
	// works at the CA.
	stateSwitched = "switched"
	// stateDeactivated: the old account is deactivated.
	stateDeactivated = "deactivated"
	// stateRegistered: the account was registered by this request.
	stateRegistered = "registered"
	// stateExisting: the account was there already, and stays.
	stateExisting = "existing"
	// stateImported: the account another client registered is stored
	// as the issuer's.
	stateImported = "imported"
	// stateDone: the replacement is complete (switched to, the old
	// account deactivated); the step asked for has nothing left to do.
	stateDone = "done"
)

// accountTarget is one ACME account of a config: the persist issuers that
// use it (the same CA, email and account_key), with the names they serve.
type accountTarget []servedSet

// accountTargets groups the served sets by account, keeping those of the
// CA ca when it is given.
func accountTargets(sets []servedSet, ca string) ([]accountTarget, error) {
	var targets []accountTarget
	var cas []string
	for _, set := range sets {
		cas = append(cas, set.Issuer.CA)
		if ca != "" && !account.SameDirectory(set.Issuer.CA, ca) {
			continue
		}
		i := slices.IndexFunc(targets, func(t accountTarget) bool { return useOneAccount(t.issuer(), set.Issuer) })
		if i < 0 {
			targets = append(targets, accountTarget{set})
			continue
		}
		targets[i] = append(targets[i], set)
	}
	if len(targets) == 0 {
		slices.Sort(cas)
		return nil, &inputError{fmt.Errorf("no persist issuer of the config uses the CA %s; its persist issuers use %s", ca, strings.Join(slices.Compact(cas), ", "))}
	}
	return targets, nil
}

// useOneAccount reports whether two issuers use one account.
func useOneAccount(a, b *Issuer) bool {
	return a.CA == b.CA && strings.EqualFold(a.Email, b.Email) && a.AccountKey == b.AccountKey
}

// refusePinned refuses targets one of which pins its account with
// account_key. A pinned issuer and an unpinned one of the same CA and
// email keep one account in storage, so a change through the unpinned
// one would change the account the pinned key names: the config's other
// persist issuers count too, targets or not.
func refusePinned(targets []accountTarget, config []servedSet) error {
	for _, t := range targets {
		iss := t.issuer()
		for _, set := range config {
			if o := set.Issuer; o.CA == iss.CA && strings.EqualFold(o.Email, iss.Email) && (o.AccountKey == "") != (iss.AccountKey == "") {
				return fmt.Errorf("the persist issuers of %s with email %q keep one account in storage, and one of them pins it with account_key: changing it through the other would change the account that key names, so nothing was changed; give every persist issuer of that CA and email the same account_key, or none: %w", iss.CA, iss.Email, account.ErrPinned)
			}
		}
		if iss.AccountKey != "" {
			return fmt.Errorf("the persist issuer of %s pins its account with account_key, so nothing was changed (give --ca to change another CA's account): %w", iss.CA, account.ErrPinned)
		}
	}
	return nil
}

// issuer is the issuer that changes the account for all of them.
func (t accountTarget) issuer() *Issuer { return t[0].Issuer }

// forget makes every issuer of the account load it again.
func (t accountTarget) forget() {
	for _, set := range t {
		set.Issuer.accounts.Forget()
	}
}

// change starts the report of what an action did.
func (t accountTarget) change(ctx context.Context, action string) (AccountChange, error) {
	iss := t.issuer()
	_, dir, err := iss.client.directory(ctx)
	if err != nil {
		return AccountChange{}, err
	}
	return AccountChange{Action: action, CADirectory: iss.CA, Email: iss.Email, Draft: dir.Draft.String()}, nil
}

// register registers the account if there is none yet, which a report
// never does: `caddy persist records` asks for it the first time, as
// POST /persist/account/register. An account there is stays.
func (t accountTarget) register(ctx context.Context) (AccountChange, error) {
	change, err := t.change(ctx, "register")
	if err != nil {
		return change, err
	}
	a := t.issuer().accounts
	before := a.Registered()
	acct, err := a.Get(ctx, true)
	if err != nil {
		return change, err
	}
	change.AccountURL, change.State = acct.Location, stateExisting
	if after := a.Registered(); after != before && after == acct.Location {
		change.State = stateRegistered
	}
	return change, nil
}

// rollover gives the account a new key, and reports the records a -02 CA
// now wants.
func (t accountTarget) rollover(ctx context.Context) (AccountChange, error) {
	change, err := t.change(ctx, "rollover")
	if err != nil {
		return change, err
	}
	out, err := t.issuer().accounts.Rollover(ctx)
	t.forget()
	if err != nil {
		return change, err
	}
	t.issuer().metrics.AccountChanged("rollover")
	change.AccountURL, change.State = out.Account.Location, stateRolledOver
	if out.Resumed {
		change.State = stateResumed
	}
	if change.Draft == record.Draft02.String() {
		change.Records, err = inspectAll(ctx, t, inspectOptions{})
	}
	return change, err
}

// replaceRequest is the body of POST /persist/account/replace.
type replaceRequest struct {
	accountScope
	// CAA adds the CAA records of the replacement to its records.
	CAA bool `json:"caa,omitempty"`
	// Switch moves to the replacement, if its records pass everywhere.
	Switch bool `json:"switch,omitempty"`
	// DeactivateOld deactivates the replaced account, after the switch.
	DeactivateOld bool `json:"deactivate_old,omitempty"`
}

// replace takes the replacement of the account as far as req asks: it
// registers it (or shows the one registered), switches to it once its
// records pass, and deactivates the old account.
func (t accountTarget) replace(ctx context.Context, req replaceRequest) (AccountChange, error) {
	change, err := t.change(ctx, "replace")
	if err != nil {
		return change, err
	}
	a := t.issuer().accounts
	if !req.Switch && !req.DeactivateOld {
		begun, err := a.Replace(ctx, account.Begin)
		if err != nil {
			return change, err
		}
		current, err := a.Get(ctx, false)
		if err != nil {
			return change, err
		}
		pending := begun.Account
		if begun.Created {
			t.issuer().metrics.AccountChanged("replace")
		}
		change.AccountURL, change.State, change.Registered, change.ReplacementURL = current.Location, statePending, begun.Created, pending.Location
		change.Records, err = inspectAll(ctx, t, inspectOptions{caa: req.CAA, account: &pending})
		return change, err
	}

	if req.Switch {
		waiting, err := a.Replace(ctx, account.Pending)
		if err != nil {
			return change, err
		}
		if pending := waiting.Account; pending.Location != "" {
			// every record and CAA policy must let the new account through
			// first, or orders would fail after the switch
			reports, err := inspectAll(ctx, t, inspectOptions{check: true, caa: req.CAA, account: &pending})
			if err != nil {
				return change, err
			}
			if len(reports) == 0 {
				return change, &inputError{fmt.Errorf("not switched: the switch first checks the replacement's record for every name, and none is known (names served only on demand are not in the config): give --domain for each name whose record you published for %s", pending.Location)}
			}
			if checkOutcome(reports, false) != nil {
				current, err := a.Get(ctx, false)
				change.AccountURL, change.State, change.ReplacementURL, change.Records = current.Location, stateNotSwitched, pending.Location, reports
				return change, err
			}
		}
		switched, err := a.Replace(ctx, account.Switch)
		t.forget()
		if err != nil {
			return change, err
		}
		change.AccountURL, change.State, change.OldAccountURL = switched.Account.Location, stateSwitched, switched.Old.Location
		if switched.Done {
			change.State = stateDone
			return change, nil
		}
		t.issuer().metrics.AccountChanged("switch")
	}

	if req.DeactivateOld {
		deactivated, err := a.Replace(ctx, account.DeactivateOld)
		if err != nil {
			return change, err
		}
		current, err := a.Get(ctx, false)
		if err != nil {
			return change, err
		}
		change.AccountURL, change.State, change.OldAccountURL = current.Location, stateDeactivated, deactivated.Old.Location
		if deactivated.Done {
			change.State = stateDone
		} else {
			t.issuer().metrics.AccountChanged("deactivate")
		}
		change.Remove, err = t.recordsOf(ctx, deactivated.Old)
		return change, err
	}
	return change, nil
}

// recordsOf renders the records naming acct for the account's names,
// without looking anything up.
func (t accountTarget) recordsOf(ctx context.Context, acct acme.Account) ([]string, error) {
	var lines []string
	for _, set := range t {
		if len(set.Names) == 0 {
			continue
		}
		plan, err := judge.PlanNames(set.Names)
		if err != nil {
			return nil, &inputError{err}
		}
		in, err := set.Issuer.directoryInputs(ctx)
		if err != nil {
			return nil, err
		}
		in.Account = acct
		for _, line := range set.Issuer.judge.Spec.ZoneLines(plan, in.Inputs) {
			if !slices.Contains(lines, line) {
				lines = append(lines, line)
			}
		}
	}
	return lines, nil
}
