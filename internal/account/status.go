package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/mholt/acmez/v3/acme"
)

// ConfirmValid asks the CA for the account's current state with a
// POST-as-GET of the account URL. Draft -02 asks clients to do this before
// handing record inputs to anyone: a record naming a deactivated account
// would never work. acmez sends POST-as-GET requests for orders only, and
// CAs refuse an empty update of an account instead (Pebble: "use
// POST-as-GET"); GetOrder's request is that POST-as-GET, with acmez's
// nonces and retries, and the account's status reads into the order's.
func (k *Keeper) ConfirmValid(ctx context.Context, acct acme.Account) error {
	client, err := k.client()
	if err != nil {
		return err
	}
	state, err := client.GetOrder(ctx, acct, acme.Order{Location: acct.Location})
	var problem acme.Problem
	switch {
	case errors.As(err, &problem):
		return fmt.Errorf("the CA refused to show ACME account %s (%s: %s); records naming it will not work until the account is usable: configure another account (see docs/accounts.md)", acct.Location, problem.Type, problem.Detail)
	case err != nil:
		return fmt.Errorf("asking the CA about ACME account %s: %w", acct.Location, err)
	case state.Status != acme.StatusValid:
		return fmt.Errorf("ACME account %s is %q at the CA; records naming it will not work: configure another account (see docs/accounts.md)", acct.Location, state.Status)
	}
	return nil
}
