package etcdstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Operation names, as metric labels.
const (
	opStore  = "store"
	opLoad   = "load"
	opDelete = "delete"
	opExists = "exists"
	opList   = "list"
	opStat   = "stat"
	opLock   = "lock"
	opUnlock = "unlock"
)

// Store puts value at key, stamped with the time of writing.
func (s *Storage) Store(ctx context.Context, key string, value []byte) (err error) {
	defer s.metrics.count(opStore, &err)
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err = s.client.Put(ctx, s.keyOf(key), string(encodeValue(value, time.Now())))
	return s.done(ctx, opStore, key, err)
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist.
func (s *Storage) Load(ctx context.Context, key string) (_ []byte, err error) {
	defer s.metrics.count(opLoad, &err)
	kv, err := s.get(ctx, opLoad, key)
	if err != nil {
		return nil, err
	}
	value, _, err := DecodeValue(kv.Value)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", s, key, err)
	}
	return value, nil
}

// Delete removes key and every key under it, as a folder.
func (s *Storage) Delete(ctx context.Context, key string) (err error) {
	defer s.metrics.count(opDelete, &err)
	ctx, cancel := s.bound(ctx)
	defer cancel()
	_, err = s.client.Txn(ctx).Then(
		clientv3.OpDelete(s.keyOf(key)),
		clientv3.OpDelete(s.folderOf(key), clientv3.WithPrefix()),
	).Commit()
	return s.done(ctx, opDelete, key, err)
}

// Exists reports whether key is a value or a folder of values. An etcd
// that cannot answer counts as no.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	info, err := s.stat(ctx, opExists, key)
	s.metrics.count(opExists, &err)
	return err == nil && info.Key != ""
}

// List returns the keys in the folder prefix: with recursive, every key
// under it; else the values and folders right in it.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) (_ []string, err error) {
	defer s.metrics.count(opList, &err)
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, s.folderOf(prefix), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err := s.done(ctx, opList, prefix, err); err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: listing %s: %w", s, prefix, fs.ErrNotExist)
	}
	base := strings.TrimSuffix(prefix, "/")
	var keys []string
	for _, kv := range resp.Kvs {
		rel := strings.TrimPrefix(string(kv.Key), s.folderOf(prefix))
		if !recursive {
			rel, _, _ = strings.Cut(rel, "/")
		}
		key := path.Join(base, rel)
		if recursive || !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// Stat describes key: a value, with its size and time of writing, or a
// folder.
func (s *Storage) Stat(ctx context.Context, key string) (_ certmagic.KeyInfo, err error) {
	defer s.metrics.count(opStat, &err)
	return s.stat(ctx, opStat, key)
}

func (s *Storage) stat(ctx context.Context, op, key string) (certmagic.KeyInfo, error) {
	kv, err := s.get(ctx, op, key)
	if err == nil {
		value, modified, err := DecodeValue(kv.Value)
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("%s: %s: %w", s, key, err)
		}
		return certmagic.KeyInfo{Key: key, Modified: modified, Size: int64(len(value)), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, s.folderOf(key), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err := s.done(ctx, op, key, err); err != nil {
		return certmagic.KeyInfo{}, err
	}
	if resp.Count == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("%s: %s: %w", s, key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// get reads the one value at key, counted as op.
func (s *Storage) get(ctx context.Context, op, key string) (*mvccKV, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.client.Get(ctx, s.keyOf(key))
	if err := s.done(ctx, op, key, err); err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %s: %w", s, key, fs.ErrNotExist)
	}
	return resp.Kvs[0], nil
}

// keyOf is the etcd key of a storage key.
func (s *Storage) keyOf(key string) string {
	return s.Prefix + "/" + strings.Trim(key, "/")
}

// folderOf is the etcd key prefix of the keys in the folder key.
func (s *Storage) folderOf(key string) string {
	if key = strings.Trim(key, "/"); key == "" {
		return s.Prefix + "/"
	}
	return s.keyOf(key) + "/"
}

// bound gives an operation its timeout.
func (s *Storage) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, time.Duration(s.Timeout))
}

// done says clearly why an operation failed: an etcd that has lost its
// quorum does not refuse, it does not answer.
func (s *Storage) done(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s %s: no answer within %s; is a quorum of the etcd members up? (%w)", s, op, key, time.Duration(s.Timeout), err)
	}
	return fmt.Errorf("%s: %s %s: %w", s, op, key, err)
}
