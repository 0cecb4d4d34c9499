#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/) and dictionaries (fuzz/dict/).

Seeds are small, real, valid inputs in each format plus a few edge cases (truncated,
wrong magic, wrong types, boundary numbers). Run from the repository root:

    python3 fuzz/make_seeds.py [TRACE.jsonl]

TRACE.jsonl, when given, is a trace written by `tidal-sim run --trace-out`; one line per
distinct event op is taken from it. Campaign output merged by scripts/fuzz.sh lives
beside these files (named by content hash) and is kept.
"""
import json
import os
import random
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "corpus")
DICT = os.path.join(ROOT, "dict")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def dictionary(target, tokens):
    os.makedirs(DICT, exist_ok=True)
    with open(os.path.join(DICT, target + ".dict"), "w") as f:
        f.write("# libFuzzer dictionary for %s (written by fuzz/make_seeds.py)\n" % target)
        for t in tokens:
            if isinstance(t, str):
                t = t.encode()
            esc = "".join(chr(b) if 0x20 <= b < 0x7f and b not in (0x22, 0x5c) else "\\x%02x" % b
                          for b in t)
            f.write('"%s"\n' % esc)


# ---- segment descriptors (engine/src/segment.cc) -----------------------------------
def s(text):
    b = text.encode()
    return struct.pack("<I", len(b)) + b


def segment(name, transport, address, regions, incarnation=1, magic=0x54534547, version=2,
            reserved=0, count=None, desc_version=1):
    out = struct.pack("<IHHQQ", magic, version, reserved, incarnation, desc_version)
    out += s(name) + s(transport) + s(address)
    out += struct.pack("<I", len(regions) if count is None else count)
    for addr, length, kind, device, rkey in regions:
        out += struct.pack("<QQBiQ", addr, length, kind, device, rkey)
    return out


def segments():
    host = (0x7f0000001000, 1 << 20, 0, 0, 0x1234abcd5678ef01)
    cuda = (0x200000000, 64 << 20, 1, 3, 0xfeedface)
    put("segment_fuzz", "empty_regions", segment("node0", "sim", "", []))
    put("segment_fuzz", "one_host_region", segment("node1", "sim", "sim://1", [host]))
    put("segment_fuzz", "host_and_cuda", segment("prefill-7", "ucx", "\x01\x02ucx-addr",
                                                 [host, cuda], incarnation=9))
    put("segment_fuzz", "region_at_top", segment("n", "sim", "", [(2**64 - 4096, 4096, 0, 0, 1)]))
    put("segment_fuzz", "edge_truncated", segment("node1", "sim", "a", [host])[:-5])
    put("segment_fuzz", "edge_bad_magic", segment("node1", "sim", "", [], magic=0x12345678))
    put("segment_fuzz", "edge_count_too_big", segment("node1", "sim", "", [host], count=1 << 30))
    put("segment_fuzz", "edge_zero_rkey", segment("node1", "sim", "", [(4096, 4096, 0, 0, 0)]))
    put("segment_fuzz", "edge_wraps", segment("node1", "sim", "", [(2**64 - 8, 16, 0, 0, 5)]))
    put("segment_fuzz", "location_host", "host")
    put("segment_fuzz", "location_cuda", "cuda:3")
    put("segment_fuzz", "location_bad", "cuda:-1")
    dictionary("segment_fuzz", [struct.pack("<IHH", 0x54534547, 2, 0), b"GEST",
                                struct.pack("<I", 0), struct.pack("<I", 1),
                                struct.pack("<Q", 2**64 - 1), "host", "cpu", "cuda:", "sim",
                                "ucx"])


# ---- trace lines and headers (sim/src/trace.cc, transfer_workload.cc) ---------------
HEADER = {"fault_mix": "all", "fault_script": "", "nodes": 3, "ops_per_node": 200,
          "planted_bug": "none", "seed": 42, "slice_bytes": 16384, "slot_bytes": 65536,
          "slots": 16, "tidal_trace": 1, "timeout_ns": 2000000, "workload": "transfer"}


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def traces(trace_path):
    seen = set()
    if trace_path:
        with open(trace_path) as f:
            for line in f:
                line = line.rstrip("\n")
                obj = json.loads(line)
                op = obj.get("op", "footer" if obj.get("footer") else "header")
                if op in seen:
                    continue
                seen.add(op)
                put("trace_line_fuzz", "real_" + op.replace(".", "_"), line)
    put("trace_line_fuzz", "escapes",
        '{"t":7,"node":2,"op":"a\\"b\\\\c\\n\\u0001","tape":9,"s":"\\u00e9\\ud83d\\ude00"}')
    put("trace_line_fuzz", "nested_args",
        '{"t":1,"node":-1,"op":"x","tape":0,"a":[1,2.5,{"b":null}],"c":true,"d":-0.0}')
    put("trace_line_fuzz", "max_numbers",
        '{"t":18446744073709551615,"node":-9223372036854775808,"op":"","tape":18446744073709551615}')
    put("trace_line_fuzz", "edge_negative_time", '{"t":-1,"node":0,"op":"x","tape":0}')
    put("trace_line_fuzz", "edge_missing_op", '{"t":1,"node":0,"tape":0}')
    put("trace_line_fuzz", "edge_truncated", '{"t":1,"node":0,"op":"xfer.sub')
    put("trace_line_fuzz", "edge_not_object", '[1,2,3]')
    dictionary("trace_line_fuzz", ['"t":', '"node":', '"op":', '"tape":', '"footer":true',
                                   "xfer.submit", "fault.inject", "\\u0000", "\\ud83d",
                                   "18446744073709551616", "-1", "1e308", "null", "true"])

    put("trace_header_fuzz", "real_header", compact(HEADER))
    script = dict(HEADER, fault_script="crash node=2 at=5ms\nshort_read src=1 dst=0 nth=3 by=100\n",
                  planted_bug="short_as_complete", fault_mix="transfer", seed=2**64 - 1)
    put("trace_header_fuzz", "with_script", compact(script))
    put("trace_header_fuzz", "ignore_remote_key", compact(dict(HEADER, planted_bug="ignore_remote_key",
                                                             fault_mix="crash,hang")))
    put("trace_header_fuzz", "edge_wrong_type", compact(dict(HEADER, nodes="3")))
    put("trace_header_fuzz", "edge_negative", compact(dict(HEADER, slots=-1)))
    put("trace_header_fuzz", "edge_version_2", compact(dict(HEADER, tidal_trace=2)))
    put("trace_header_fuzz", "edge_bad_bug", compact(dict(HEADER, planted_bug="nope")))
    dictionary("trace_header_fuzz", ['"tidal_trace":1', '"workload":"transfer"'] +
               ['"%s":' % k for k in sorted(HEADER)] +
               ["none", "all", "short_as_complete", "ignore_remote_key", "18446744073709551615",
                "18446744073709551616", "1.5", "null"])


# ---- fault scripts (sim/src/fault_plan.cc) -----------------------------------------
KINDS = ["short_read", "short_write", "unregistered_local", "stale_rkey", "outside_window",
         "crash", "hang", "partition", "completion_delay", "completion_reorder",
         "completion_loss", "message_delay", "message_drop", "message_duplicate",
         "registration_failure"]


def fault_scripts():
    put("fault_script_fuzz", "readme",
        "short_read  src=2 dst=0 nth=3 by=100     # the 3rd read from node 2 to node 0\n"
        "crash node=3 at=5ms\nhang node=1 at=1ms for=2ms\n"
        "partition a=0,1 b=2 at=1ms for=3ms\nmessage_drop from=0 to=1 nth=1\n")
    put("fault_script_fuzz", "every_kind",
        "".join("%s src=%d dst=* nth=%d\n" % (k, i % 4, i + 1) for i, k in enumerate(KINDS)
                if k not in ("crash", "hang", "partition")) +
        "crash node=0 at=1s\nhang node=2 at=3us for=7ns\npartition a=0 b=1,2,3\n")
    put("fault_script_fuzz", "comments_and_blanks", "# only comments\n\n   \t\r\n# end")
    put("fault_script_fuzz", "max_numbers",
        "completion_delay nth=18446744073709551615 by=18446744073709551615\n"
        "crash node=4096 at=18446744073709ms\n")
    put("fault_script_fuzz", "mix_all", "all")
    put("fault_script_fuzz", "mix_list", "crash,hang,short_read")
    put("fault_script_fuzz", "edge_unknown_kind", "short_reed src=1\n")
    put("fault_script_fuzz", "edge_crash_no_node", "crash at=5ms\n")
    put("fault_script_fuzz", "edge_at_on_transfer", "short_read at=5ms\n")
    put("fault_script_fuzz", "edge_overflow", "hang node=1 at=18446744073709551615s\n")
    dictionary("fault_script_fuzz", KINDS + ["src=", "dst=", "node=", "from=", "to=", "nth=",
                                             "at=", "for=", "by=", "a=", "b=", "ns", "us", "ms",
                                             "s", "*", ",", "#", "none", "transfer", "messages",
                                             "all", "4096", "4097", "18446744073709551615"])


# ---- tapes (sim/src/tape.cc: 8 bytes a draw, zeros past the end) -------------------
def tapes():
    put("transfer_tape_fuzz", "empty", b"")
    put("transfer_tape_fuzz", "determinism_test", bytes(range(1, 14)))
    put("transfer_tape_fuzz", "all_ff_64", b"\xff" * 64)
    rng = random.Random(5)
    for i in range(4):
        put("transfer_tape_fuzz", "random_%d" % i, bytes(rng.randrange(256) for _ in range(512)))
    rng = random.Random(11)
    put("coll_tape_fuzz", "empty", b"")
    put("coll_tape_fuzz", "all_ff_64", b"\xff" * 64)
    for i in range(3):
        put("coll_tape_fuzz", "random_%d" % i, bytes(rng.randrange(256) for _ in range(256)))
    # Draws that sit just below the ppm and percent thresholds the workload uses.
    put("transfer_tape_fuzz", "low_draws", b"".join(struct.pack("<Q", (i * 7919) % 1000)
                                                    for i in range(128)))


# ---- store RPC frames and bodies (store/src/rpc.cc, protocol.cc) -------------------
def frame(msg_type, request_id, body, response=False, magic=0x50525354, version=1, length=None):
    t = msg_type | (0x8000 if response else 0)
    return struct.pack("<IHHQI", magic, version, t, request_id,
                       len(body) if length is None else length) + body


def store_rpc():
    mount = s("node1") + struct.pack("<QQ", 0x7f0000000000, 8 << 20)
    put_start = s("key-1") + struct.pack("<QII", 4096, 2, 2) + s("node2") + s("node3") + \
        struct.pack("<BQ", 1, 5_000_000)
    keygen = s("key-1") + struct.pack("<Q", 7)
    remove = s("key-1") + b"\x01"
    keys = struct.pack("<I", 3) + s("a") + s("b") + s("")
    replicas = struct.pack("<I", 2) + s("node2") + struct.pack("<QQ", 4096, 100) + s("node3") + \
        struct.pack("<QQ", 8192, 100)
    ok = struct.pack("<i", 0) + s("")
    put("store_rpc_fuzz", "register_client", frame(1, 1, s("client-1")))
    put("store_rpc_fuzz", "heartbeat", frame(2, 2, b""))
    put("store_rpc_fuzz", "mount", frame(3, 3, mount))
    put("store_rpc_fuzz", "put_start", frame(5, 4, put_start))
    put("store_rpc_fuzz", "put_start_response", frame(5, 4, ok + struct.pack("<Q", 9) + replicas,
                                                      response=True))
    put("store_rpc_fuzz", "put_end", frame(6, 5, keygen))
    put("store_rpc_fuzz", "get_replica_list_response",
        frame(8, 6, ok + struct.pack("<QQQ", 100, 9, 1_000_000) + replicas, response=True))
    put("store_rpc_fuzz", "batch_exists", frame(10, 7, keys))
    put("store_rpc_fuzz", "batch_exists_response",
        frame(10, 7, ok + struct.pack("<Iii", 2, 0, -704), response=True))
    put("store_rpc_fuzz", "remove", frame(11, 8, remove))
    put("store_rpc_fuzz", "error_response",
        frame(11, 8, struct.pack("<i", -706) + s("object has a lease"), response=True))
    put("store_rpc_fuzz", "body_u64s", struct.pack("<IQQ", 2, 1, 2**64 - 1))
    put("store_rpc_fuzz", "edge_bad_magic", frame(1, 1, b"", magic=0x50525355))
    put("store_rpc_fuzz", "edge_type_zero", frame(0, 1, b""))
    put("store_rpc_fuzz", "edge_type_12", frame(12, 1, b""))
    put("store_rpc_fuzz", "edge_length_mismatch", frame(3, 1, mount, length=len(mount) + 1))
    put("store_rpc_fuzz", "edge_short_header", frame(3, 1, mount)[:19])
    put("store_rpc_fuzz", "edge_key_list_huge", struct.pack("<I", 65536))
    dictionary("store_rpc_fuzz", [struct.pack("<IH", 0x50525354, 1), b"TSRP", b"\x00\x80",
                                  struct.pack("<I", 0), struct.pack("<i", -704), "node",
                                  struct.pack("<I", 16), struct.pack("<I", 17)])


# ---- serialized tensors (store/src/tensor.cc) ---------------------------------------
DTYPE_BYTES = [4, 8, 2, 2, 1, 1, 4, 8]


def tensor(dtype, shape, data=None, magic=0x534E5454, version=1, data_bytes=None):
    n = DTYPE_BYTES[dtype] if dtype < 8 else 1
    for d in shape:
        n *= d
    if data is None:
        data = bytes((i * 37 + 11) & 0xff for i in range(n))
    return struct.pack("<IHBB", magic, version, dtype, len(shape)) + \
        b"".join(struct.pack("<Q", d) for d in shape) + \
        struct.pack("<Q", len(data) if data_bytes is None else data_bytes) + data


def tensors():
    put("tensor_header_fuzz", "f32_4x6", tensor(0, [4, 6]))
    put("tensor_header_fuzz", "bf16_2x3x4", tensor(3, [2, 3, 4]))
    put("tensor_header_fuzz", "i8_12", tensor(4, [12]))
    put("tensor_header_fuzz", "f64_scalar", tensor(1, []))
    put("tensor_header_fuzz", "i64_8dims", tensor(7, [1, 2, 1, 2, 1, 2, 1, 2]))
    put("tensor_header_fuzz", "u8_zero_dim_huge", tensor(5, [0, 2**63, 2**63]))
    put("tensor_header_fuzz", "edge_9dims", tensor(5, [1] * 9))
    put("tensor_header_fuzz", "edge_bad_dtype", tensor(8, [2]))
    put("tensor_header_fuzz", "edge_overflow", tensor(0, [2**62, 8], data=b""))
    put("tensor_header_fuzz", "edge_short_data", tensor(0, [4], data=b"\x00" * 15, data_bytes=16))
    put("tensor_header_fuzz", "edge_bad_magic", tensor(0, [1], magic=0x534E5455))
    dictionary("tensor_header_fuzz", [struct.pack("<IH", 0x534E5454, 1), b"TTNS",
                                      struct.pack("<Q", 0), struct.pack("<Q", 1),
                                      struct.pack("<Q", 2**63), struct.pack("<Q", 2**64 - 1)])


# ---- collectives wire formats (collectives/src/wire.cc) ------------------------------
def coll_wire():
    data_hdr = struct.pack("<BBBBIQQQQIQQ", 0xC1, 1, 1, 0, 3, 0xabcdef, 7, 2, 4096, 0, 0, 0)
    p2p_hdr = struct.pack("<BBBBIQQQQIQQ", 0xC1, 1, 1, 1, 1, 0xabcdef, 0, 0, 1000, 42, 5000, 4000)
    credit = struct.pack("<BBBBIQQQQIQQ", 0xC1, 1, 2, 0, 2, 0xabcdef, 7, 3, 0, 0, 0, 0)
    report = struct.pack("<BBBBIQQIQQ", 0xC2, 1, 1, 1, 2, 0xabcdef, 12, 0, 0b100, 0)
    decision = struct.pack("<BBBBIQQIQQ", 0xC2, 1, 2, 2, 0, 0xabcdef, 12, 1, 0, 0b1011)
    abort = struct.pack("<BBBBIQQIQQ", 0xC2, 1, 4, 0, 0, 0xabcdef, 12, 1, 0b10, 0)
    boot = struct.pack("<BBIIQQQ", 0xC3, 1, 1, 4, 65536, 0x7f0000001000, 262144) + \
        s("node1") + s("pg/rank1")
    put("coll_wire_fuzz", "data", data_hdr)
    put("coll_wire_fuzz", "data_p2p", p2p_hdr)
    put("coll_wire_fuzz", "credit", credit)
    put("coll_wire_fuzz", "control_report", report)
    put("coll_wire_fuzz", "control_decision", decision)
    put("coll_wire_fuzz", "control_abort", abort)
    put("coll_wire_fuzz", "bootstrap", boot)
    put("coll_wire_fuzz", "edge_data_truncated", data_hdr[:-1])
    put("coll_wire_fuzz", "edge_control_flags", report[:3] + b"\x04" + report[4:])
    put("coll_wire_fuzz", "edge_bootstrap_trailing", boot + b"\x00")
    put("coll_wire_fuzz", "edge_version_2", b"\xc1\x02" + data_hdr[2:])
    dictionary("coll_wire_fuzz", [b"\xc1\x01", b"\xc2\x01", b"\xc3\x01",
                                  struct.pack("<I", 4096), struct.pack("<I", 0)])


if __name__ == "__main__":
    segments()
    traces(sys.argv[1] if len(sys.argv) > 1 else None)
    fault_scripts()
    tapes()
    store_rpc()
    tensors()
    coll_wire()
