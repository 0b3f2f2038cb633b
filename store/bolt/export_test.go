package bolt

// EncodeRecordForTest lets tests write journals as the store does.
var EncodeRecordForTest = encodeRecord

// Syncs counts the journal's fdatasyncs.
func (s *Store) Syncs() int64 { return s.j.syncs.Load() }
