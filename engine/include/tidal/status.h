// Status and Result<T>: how every tidal API reports failure. No exception crosses a
// public API, a callback or a backend boundary.
//
// An OK Status is a single integer and allocates nothing. A failed Status carries its
// ErrorCode and a message naming what went wrong.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "tidal/assert.h"
#include "tidal/error.h"

namespace tidal {

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  explicit Status(ErrorCode code) : code_(code) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::OK; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "ADDRESS_NOT_REGISTERED(-810): local range [0x10, 0x20) is not registered".
  std::string ToString() const;

  bool operator==(const Status& other) const { return code_ == other.code_; }

 private:
  ErrorCode code_ = ErrorCode::OK;
  std::string message_;  // empty for OK; std::string's small buffer means no allocation
};

// Result<T> holds either a value or a failed Status (never an OK Status without value).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT implicit
  Result(Status status) : v_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    TIDAL_ASSERT(!std::get<1>(v_).ok());
  }
  Result(ErrorCode code, std::string message) : Result(Status(code, std::move(message))) {}

  bool ok() const { return v_.index() == 0; }
  ErrorCode code() const { return ok() ? ErrorCode::OK : std::get<1>(v_).code(); }
  Status status() const { return ok() ? Status() : std::get<1>(v_); }

  T& value() & {
    TIDAL_ASSERT(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    TIDAL_ASSERT(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    TIDAL_ASSERT(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tidal

// Returns early from a plain function with the failed Status of `expr`.
#define TIDAL_RETURN_IF_ERROR(expr)        \
  do {                                     \
    ::tidal::Status tidal_s_ = (expr);     \
    if (!tidal_s_.ok()) return tidal_s_;   \
  } while (0)

// The same for coroutines.
#define TIDAL_CO_RETURN_IF_ERROR(expr)       \
  do {                                       \
    ::tidal::Status tidal_s_ = (expr);       \
    if (!tidal_s_.ok()) co_return tidal_s_;  \
  } while (0)
