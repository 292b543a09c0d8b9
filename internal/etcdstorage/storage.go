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
	stored := string(encodeValue(value, time.Now()))
	return s.do(ctx, opStore, key, func(ctx context.Context) error {
		_, err := s.client.Put(ctx, s.keyOf(key), stored)
		return err
	})
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
	return s.do(ctx, opDelete, key, func(ctx context.Context) error {
		_, err := s.client.Txn(ctx).Then(
			clientv3.OpDelete(s.keyOf(key)),
			clientv3.OpDelete(s.folderOf(key), clientv3.WithPrefix()),
		).Commit()
		return err
	})
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
	folder := s.folderOf(prefix)
	var resp *clientv3.GetResponse
	err = s.do(ctx, opList, prefix, func(ctx context.Context) (err error) {
		resp, err = s.client.Get(ctx, folder, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: listing %s: %w", s, prefix, fs.ErrNotExist)
	}
	base := strings.TrimSuffix(prefix, "/")
	var keys []string
	for _, kv := range resp.Kvs {
		rel := strings.TrimPrefix(string(kv.Key), folder)
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
	var resp *clientv3.GetResponse
	err = s.do(ctx, op, key, func(ctx context.Context) (err error) {
		resp, err = s.client.Get(ctx, s.folderOf(key), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err
	})
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if resp.Count == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("%s: %s: %w", s, key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// get reads the one value at key, for op.
func (s *Storage) get(ctx context.Context, op, key string) (*mvccKV, error) {
	var resp *clientv3.GetResponse
	err := s.do(ctx, op, key, func(ctx context.Context) (err error) {
		resp, err = s.client.Get(ctx, s.keyOf(key))
		return err
	})
	if err != nil {
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
