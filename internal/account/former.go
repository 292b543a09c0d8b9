package account

import (
	"cmp"
	"context"
	"encoding/json"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// Former returns the accounts the issuer used before and no longer uses,
// newest first: the old account of a replacement, once deactivated
// (before that, instances that have not picked the switch up may still
// order with it), and accounts set aside when new_account_if_missing or a
// vanished account brought a new one. Records naming them authorize
// nothing this issuer asks for, and may be removed. The key of each is
// included when its file was kept; a former account whose files cannot
// be read is left out, since nothing it names can be told apart then.
func (k *Keeper) Former(ctx context.Context) ([]acme.Account, error) {
	storage, loc, err := k.ownedStorage()
	if err != nil {
		return nil, err
	}
	current, err := loadStored(ctx, storage, loc)
	if err != nil {
		current = acme.Account{}
	}
	var former []acme.Account
	add := func(acct acme.Account) {
		if acct.Location != "" && acct.Location != current.Location && !slices.ContainsFunc(former, func(f acme.Account) bool { return f.Location == acct.Location }) {
			former = append(former, acct)
		}
	}
	prev := loc.replaced()
	aside := append(setAsideAccounts(ctx, storage, prev, "deactivated"), setAsideAccounts(ctx, storage, loc, "vanished")...)
	aside = append(aside, setAsideAccounts(ctx, storage, loc, "unusable")...)
	slices.SortStableFunc(aside, func(a, b asideAccount) int { return b.compare(a) })
	for _, a := range aside {
		add(a.acct)
	}
	return former, nil
}

// asideAccount is an account whose files were set aside at the UNIX time
// at, the nth set aside in that second.
type asideAccount struct {
	acct acme.Account
	at   int64
	nth  int
}

// compare orders accounts by when they were set aside.
func (a asideAccount) compare(b asideAccount) int {
	if a.at != b.at {
		return cmp.Compare(a.at, b.at)
	}
	return cmp.Compare(a.nth, b.nth)
}

// setAsideAccounts reads the accounts whose files setAside moved from loc
// for why, oldest first. A registration whose key was not kept (or cannot
// be read) gives the account without its key.
func setAsideAccounts(ctx context.Context, storage certmagic.Storage, loc location, why string) []asideAccount {
	keys, err := storage.List(ctx, path.Dir(loc.Reg), false)
	if err != nil {
		return nil
	}
	prefix := loc.Reg + "." + why + "-"
	var out []asideAccount
	for _, key := range keys {
		suffix, found := strings.CutPrefix(key, loc.Reg)
		if !found || !strings.HasPrefix(key, prefix) {
			continue
		}
		unix, n, again := strings.Cut(strings.TrimPrefix(key, prefix), ".")
		at, err := strconv.ParseInt(unix, 10, 64)
		if err != nil {
			continue
		}
		nth := 1
		if again {
			if nth, err = strconv.Atoi(n); err != nil {
				continue
			}
		}
		acct, err := loadStored(ctx, storage, location{Reg: key, Key: loc.Key + suffix})
		if err != nil {
			data, loadErr := storage.Load(ctx, key)
			if loadErr != nil || json.Unmarshal(data, &acct) != nil {
				continue
			}
		}
		if acct.Location != "" {
			out = append(out, asideAccount{acct: acct, at: at, nth: nth})
		}
	}
	slices.SortStableFunc(out, asideAccount.compare)
	return out
}
