// FileJournal: tidal-master's durable state (--state-dir), one append-only file per journal.
//
// File format (little-endian): a sequence of records
//   u8 op (1 put, 2 erase) | u32 key length | key | u32 value length | value | u32 check
// where `check` is FNV-1a (32 bit) of everything before it in the record; an erase has an
// empty value. Open reads the file front to back into a map (last record of a key wins),
// drops a record cut off at the end (the process died while writing it: that change was
// never acknowledged), and rewrites the file compacted (a temporary file, then rename).
// Every Put and Erase appends one record with write(2) before it returns, so the change
// survives a crash of the process; with `sync` it is also fdatasync'ed, so it survives a
// crash of the machine. The file is compacted again when it grows past four times its
// compacted size (plus 1 MiB).
//
// A write that fails stops the process (exit status 3, the reason on stderr): the master
// must never acknowledge a change it could not make durable (store::MasterJournal).
//
// Thread safety: none; tidal-master uses it on its executor only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "tidal/metadata_store.h"
#include "tidal/status.h"
#include "tidal/store/master.h"

namespace tidal::tools {

class FileJournal final : public store::MasterJournal {
 public:
  // Opens or creates `path`. CORRUPT_INPUT (naming the byte offset) for a record whose
  // length or check does not hold before the end of the file; INVALID_PARAMS (with the
  // system's reason) when the file cannot be read, written or replaced. Nothing is
  // changed on disk when it fails.
  static Result<std::unique_ptr<FileJournal>> Open(const std::string& path, bool sync);
  ~FileJournal() override;
  FileJournal(const FileJournal&) = delete;
  FileJournal& operator=(const FileJournal&) = delete;

  void Put(const std::string& key, std::string value) override;
  void Erase(const std::string& key) override;
  std::map<std::string, std::string> Load() const override { return records_; }

  const std::map<std::string, std::string>& records() const { return records_; }
  const std::string& path() const { return path_; }
  uint64_t dropped_tail_bytes() const { return dropped_tail_; }

 private:
  FileJournal(std::string path, bool sync) : path_(std::move(path)), sync_(sync) {}
  Status Rewrite();  // compacts: writes records_ to path_ + ".tmp", renames it over path_
  void Append(uint8_t op, const std::string& key, const std::string& value);

  std::string path_;
  bool sync_;
  int fd_ = -1;
  std::map<std::string, std::string> records_;
  uint64_t compacted_bytes_ = 0, file_bytes_ = 0, dropped_tail_ = 0;
};

// A MetadataStore kept in a FileJournal: tidal-master's segment metadata and endpoint
// directory survive a restart with --state-dir (when --metadata is mem://). Same codes as
// InMemoryMetadataStore.
class JournaledMetadataStore final : public MetadataStore {
 public:
  explicit JournaledMetadataStore(std::unique_ptr<FileJournal> journal)
      : journal_(std::move(journal)) {}
  Task<Status> Put(std::string key, std::string value) override;
  Task<Result<std::string>> Get(std::string key) override;
  Task<Status> Delete(std::string key) override;
  Task<Result<KeyValues>> List(std::string prefix) override;

 private:
  std::unique_ptr<FileJournal> journal_;
};

}  // namespace tidal::tools
