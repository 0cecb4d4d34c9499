// FileJournal and JournaledMetadataStore (see file_journal.h).
#include "file_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tidal/codec.h"

namespace tidal::tools {
namespace {

constexpr uint8_t kPut = 1, kErase = 2;

uint32_t Fnv(std::string_view bytes) {
  uint32_t h = 2166136261u;
  for (unsigned char c : bytes) h = (h ^ c) * 16777619u;
  return h;
}

std::string Record(uint8_t op, const std::string& key, const std::string& value) {
  ByteWriter w;
  w.U8(op);
  w.Str(key);
  w.Str(value);
  const uint32_t check = Fnv(w.str());
  w.U32(check);
  return w.Take();
}

Status SysError(const std::string& what) {
  return Status(ErrorCode::INVALID_PARAMS, what + ": " + std::strerror(errno));
}

bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<FileJournal>> FileJournal::Open(const std::string& path, bool sync) {
  std::unique_ptr<FileJournal> j(new FileJournal(path, sync));
  std::string data;
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream ss;
      ss << in.rdbuf();
      data = ss.str();
    } else if (errno != ENOENT) {
      return SysError("state journal " + path + ": cannot read");
    }
  }
  ByteReader r(data);
  while (!r.done()) {
    const size_t offset = data.size() - r.remaining();
    uint8_t op = 0;
    std::string key, value;
    uint32_t check = 0;
    const bool whole = r.U8(&op) && r.Str(&key, 1u << 30) && r.Str(&value, 1u << 30) && r.U32(&check);
    if (!whole) {
      // Cut off by a crash mid-write: that change was never acknowledged.
      j->dropped_tail_ = data.size() - offset;
      break;
    }
    const size_t end = data.size() - r.remaining();
    if (Fnv(std::string_view(data).substr(offset, end - offset - 4)) != check ||
        (op != kPut && op != kErase) || key.empty()) {
      return Status(ErrorCode::CORRUPT_INPUT, "state journal " + path + ": record at byte " +
                                                  std::to_string(offset) + " does not check");
    }
    if (op == kPut) {
      j->records_[key] = std::move(value);
    } else {
      j->records_.erase(key);
    }
  }
  TIDAL_RETURN_IF_ERROR(j->Rewrite());
  return j;
}

FileJournal::~FileJournal() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileJournal::Rewrite() {
  const std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return SysError("state journal " + tmp + ": cannot create");
  std::string all;
  for (const auto& [k, v] : records_) all += Record(kPut, k, v);
  if (!WriteAll(fd, all) || ::fdatasync(fd) != 0) {
    Status s = SysError("state journal " + tmp + ": cannot write");
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    Status s = SysError("state journal " + path_ + ": cannot replace");
    ::unlink(tmp.c_str());
    return s;
  }
  int appender = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (appender < 0) return SysError("state journal " + path_ + ": cannot open for append");
  if (fd_ >= 0) ::close(fd_);
  fd_ = appender;
  compacted_bytes_ = file_bytes_ = all.size();
  return Status();
}

void FileJournal::Append(uint8_t op, const std::string& key, const std::string& value) {
  const std::string rec = Record(op, key, value);
  if (!WriteAll(fd_, rec) || (sync_ && ::fdatasync(fd_) != 0)) {
    std::fprintf(stderr, "tidal-master: state journal %s: write failed: %s; stopping\n",
                 path_.c_str(), std::strerror(errno));
    std::_Exit(3);
  }
  file_bytes_ += rec.size();
  if (file_bytes_ > 4 * compacted_bytes_ + (1u << 20)) {
    Status s = Rewrite();
    if (!s.ok()) {
      std::fprintf(stderr, "tidal-master: %s; stopping\n", s.ToString().c_str());
      std::_Exit(3);
    }
  }
}

void FileJournal::Put(const std::string& key, std::string value) {
  Append(kPut, key, value);
  records_[key] = std::move(value);
}

void FileJournal::Erase(const std::string& key) {
  Append(kErase, key, "");
  records_.erase(key);
}

Task<Status> JournaledMetadataStore::Put(std::string key, std::string value) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "empty key");
  journal_->Put(key, std::move(value));
  co_return Status();
}

Task<Result<std::string>> JournaledMetadataStore::Get(std::string key) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "empty key");
  auto it = journal_->records().find(key);
  if (it == journal_->records().end()) co_return Status(ErrorCode::OBJECT_NOT_FOUND, key);
  co_return it->second;
}

Task<Status> JournaledMetadataStore::Delete(std::string key) {
  if (key.empty()) co_return Status(ErrorCode::INVALID_KEY, "empty key");
  if (journal_->records().count(key) == 0) co_return Status(ErrorCode::OBJECT_NOT_FOUND, key);
  journal_->Erase(key);
  co_return Status();
}

Task<Result<KeyValues>> JournaledMetadataStore::List(std::string prefix) {
  KeyValues out;
  for (auto it = journal_->records().lower_bound(prefix);
       it != journal_->records().end() && it->first.rfind(prefix, 0) == 0; ++it) {
    out.emplace_back(it->first, it->second);
  }
  co_return out;
}

}  // namespace tidal::tools
