// MessengerMux lets two users share one endpoint: each channel sees only its own
// messages, in order, with the sender's name; untagged or unclaimed messages are counted
// as dropped, never delivered to the wrong user.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "tidal/messenger_mux.h"

namespace tidal {
namespace {

// A loopback network of in-memory endpoints that delivers synchronously.
class FakeNet {
 public:
  class Endpoint final : public Messenger {
   public:
    Endpoint(FakeNet& net, std::string name) : net_(net), name_(std::move(name)) {}
    std::string_view LocalName() const override { return name_; }
    Status Send(std::string_view to, std::string payload) override {
      Endpoint* t = net_.Find(to);
      if (t == nullptr) return Status(ErrorCode::SEGMENT_NOT_FOUND, "no endpoint");
      if (t->receiver_) t->receiver_(name_, std::move(payload));
      return Status();
    }
    void SetReceiver(Receiver r) override { receiver_ = std::move(r); }

   private:
    FakeNet& net_;
    std::string name_;
    Receiver receiver_;
  };
  Endpoint& Add(const std::string& name) {
    return *(endpoints_[name] = std::make_unique<Endpoint>(*this, name));
  }
  Endpoint* Find(std::string_view name) {
    auto it = endpoints_.find(std::string(name));
    return it == endpoints_.end() ? nullptr : it->second.get();
  }

 private:
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;
};

TEST(MessengerMux, ChannelsSeeOnlyTheirOwnMessages) {
  FakeNet net;
  auto& a = net.Add("a");
  auto& b = net.Add("b");
  MessengerMux mux_a(a), mux_b(b);
  std::vector<std::pair<std::string, std::string>> store, coll;
  mux_b.Channel(1).SetReceiver(
      [&](std::string_view from, std::string p) { store.emplace_back(from, p); });
  mux_b.Channel(2).SetReceiver(
      [&](std::string_view from, std::string p) { coll.emplace_back(from, p); });
  EXPECT_EQ(mux_a.Channel(1).LocalName(), "a");
  ASSERT_TRUE(mux_a.Channel(1).Send("b", "put k").ok());
  ASSERT_TRUE(mux_a.Channel(2).Send("b", "allreduce").ok());
  ASSERT_TRUE(mux_a.Channel(1).Send("b", "").ok());  // empty payloads survive the tag
  EXPECT_EQ(store, (std::vector<std::pair<std::string, std::string>>{{"a", "put k"}, {"a", ""}}));
  EXPECT_EQ(coll, (std::vector<std::pair<std::string, std::string>>{{"a", "allreduce"}}));
  EXPECT_EQ(&mux_b.Channel(1), &mux_b.Channel(1));
  EXPECT_EQ(mux_a.Channel(1).Send("nobody", "x").code(), ErrorCode::SEGMENT_NOT_FOUND);
}

TEST(MessengerMux, UnclaimedAndUntaggedMessagesAreDropped) {
  FakeNet net;
  auto& a = net.Add("a");
  auto& b = net.Add("b");
  MessengerMux mux_b(b);
  int got = 0;
  mux_b.Channel(7).SetReceiver([&](std::string_view, std::string) { ++got; });
  ASSERT_TRUE(a.Send("b", "").ok());            // no channel byte
  ASSERT_TRUE(a.Send("b", "\x03hello").ok());   // channel 3: nobody
  ASSERT_TRUE(a.Send("b", "\x07hello").ok());   // channel 7
  EXPECT_EQ(got, 1);
  EXPECT_EQ(mux_b.dropped(), 2u);
}

}  // namespace
}  // namespace tidal
