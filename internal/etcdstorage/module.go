// Package etcdstorage is a certmagic storage on etcd, registered as the
// Caddy module caddy.storage.etcd_test in the binaries that import it. It
// exists to test a Caddy cluster with the persist issuer on a real
// distributed store: it is not shipped with the plugin, and any Caddy
// storage module serves a cluster as well.
//
// Keys and values go through etcd's client; locks are etcd's own: a
// concurrency.Session, whose lease ends when its holder stops renewing it,
// and a concurrency.Mutex on it.
package etcdstorage

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(new(Storage))
}

// Defaults of the config fields.
const (
	DefaultPrefix  = "caddy"
	DefaultLockTTL = 15 * time.Second
	DefaultTimeout = 10 * time.Second
)

// Storage keeps Caddy's assets (certificates, ACME accounts, locks) in an
// etcd cluster.
type Storage struct {
	// Endpoints are the client URLs of the etcd members, e.g.
	// "http://127.0.0.1:2379". Required.
	Endpoints []string `json:"endpoints,omitempty"`
	// Prefix is put before every key, with a slash, so that several
	// clusters or tests can share one etcd. Default "caddy".
	Prefix string `json:"prefix,omitempty"`
	// LockTTL is the lease of a lock's session: when the instance holding
	// a lock dies, the lock is released this long after its last renewal.
	// Whole seconds; default 15s, at least 1s.
	LockTTL caddy.Duration `json:"lock_ttl,omitempty"`
	// Timeout bounds each storage operation (not the wait for a lock), so
	// that an etcd without quorum fails an operation instead of hanging
	// it. Default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	client  *clientv3.Client
	logger  *zap.Logger
	metrics *storageMetrics
	locks   *heldLocks
}

// CaddyModule returns the Caddy module information.
func (*Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.etcd_test",
		New: func() caddy.Module { return new(Storage) },
	}
}

// Provision connects to etcd. The client connects lazily: a cluster that
// is down fails operations, not the config.
func (s *Storage) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if s.Prefix == "" {
		s.Prefix = DefaultPrefix
	}
	s.Prefix = strings.Trim(s.Prefix, "/")
	if s.LockTTL == 0 {
		s.LockTTL = caddy.Duration(DefaultLockTTL)
	}
	if s.Timeout == 0 {
		s.Timeout = caddy.Duration(DefaultTimeout)
	}
	s.metrics = newStorageMetrics(ctx.GetMetricsRegistry())
	s.locks = newHeldLocks()
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   s.Endpoints,
		DialTimeout: time.Duration(s.Timeout),
		Logger:      s.logger.Named("client"),
	})
	if err != nil {
		return fmt.Errorf("etcd client for %v: %v", s.Endpoints, err)
	}
	s.client = client
	return nil
}

// Validate checks the config.
func (s *Storage) Validate() error {
	if len(s.Endpoints) == 0 {
		return errors.New("etcd storage needs at least one endpoint")
	}
	if time.Duration(s.LockTTL) < time.Second {
		return fmt.Errorf("lock_ttl %s is shorter than etcd's lease granularity of 1s", time.Duration(s.LockTTL))
	}
	if s.Timeout < 0 {
		return errors.New("timeout must not be negative")
	}
	return nil
}

// Cleanup releases the locks still held and closes the client.
func (s *Storage) Cleanup() error {
	if s.client == nil {
		return nil
	}
	s.locks.releaseAll(s.logger)
	return s.client.Close()
}

// CertMagicStorage returns the storage to certmagic.
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) {
	return s, nil
}

// String names the storage in logs and messages.
func (s *Storage) String() string {
	return fmt.Sprintf("etcd storage at %s (prefix %q)", strings.Join(s.Endpoints, ","), s.Prefix)
}

// Interface guards
var (
	_ caddy.Module           = (*Storage)(nil)
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.Validator        = (*Storage)(nil)
	_ caddy.CleanerUpper     = (*Storage)(nil)
	_ caddy.StorageConverter = (*Storage)(nil)
	_ certmagic.Storage      = (*Storage)(nil)
	_ certmagic.TryLocker    = (*Storage)(nil)
	_ fmt.Stringer           = (*Storage)(nil)
)
