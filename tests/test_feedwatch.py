"""The feed alerts' rules, tick by tick: a gap alerts at once; duplicates only
beyond one copy of each packet.  Pure: channels as the kernel's readers give
them (maps.FeedChannel); the kernel test is in test_feed_control.py.
"""

from __future__ import annotations

import pytest

from hft_tui.feedwatch import DUP_MIN, DUP_SLACK, DUP_WINDOW_S, FeedWatch, unusual_duplicates
from hft_tui.maps import FeedChannel

pytestmark = pytest.mark.pure


def channel(packets=0, gaps=0, gap_messages=0, dup_packets=0, next_seq=1, cid="1150681088/1") -> FeedChannel:
    return FeedChannel(
        id=cid,
        next_seq=next_seq,
        packets=packets,
        messages=packets,
        gaps=gaps,
        gap_messages=gap_messages,
        dup_packets=dup_packets,
        seq_jumps=0,
    )


def test_the_first_channels_seen_are_the_baseline_old_gaps_are_no_news():
    w = FeedWatch()
    assert w.check([channel(packets=100, gaps=3, gap_messages=40)], 0.0) == []
    assert w.check([channel(packets=110, gaps=3, gap_messages=40)], 0.1) == []


def test_a_gap_alerts_in_the_tick_it_grows_and_is_journaled_with_its_channel():
    w = FeedWatch()
    w.check([channel(packets=100, gaps=1, gap_messages=5)], 0.0)
    (got,) = w.check([channel(packets=101, gaps=2, gap_messages=12, next_seq=513)], 0.1)
    assert (got.alert.kind, got.alert.reason, got.alert.count) == ("feed", "gap", 7)
    assert got.alert.message.startswith("FEED GAP on channel 1150681088/1: 1 gap, 7 message(s) never received")
    assert got.detail == {
        "channel": "1150681088/1",
        "gaps": 1,
        "gap_messages": 7,
        "next_seq": 513,
        "total_gaps": 2,
        "total_gap_messages": 12,
    }
    assert w.check([channel(packets=102, gaps=2, gap_messages=12)], 0.2) == []


def test_a_channel_that_appears_later_counts_from_zero():
    w = FeedWatch()
    w.check([channel(packets=10)], 0.0)
    got = w.check([channel(packets=11), channel(packets=3, gaps=1, gap_messages=2, cid="000010059B")], 0.1)
    assert [(f.detail["channel"], f.alert.count) for f in got] == [("000010059B", 2)]


DUPLICATES = [
    (1000, 1000, False, "A/B: one copy of each"),
    (1000, 1200, False, "the B line a little ahead in this window"),
    (0, DUP_MIN, False, "a few resends with no new packet"),
    (0, DUP_MIN + 1, True, "a replay: duplicates and nothing new"),
    (1000, 2000, True, "a third copy of each"),
]


@pytest.mark.parametrize("fresh,dups,unusual,_why", DUPLICATES, ids=[w for *_, w in DUPLICATES])
def test_duplicates_are_unusual_beyond_one_copy_of_each_new_packet(fresh, dups, unusual, _why):
    assert unusual_duplicates(fresh, dups) is unusual
    assert DUP_SLACK < 1  # one copy of each stays within the slack


def test_unusual_duplicates_alert_once_a_window():
    w = FeedWatch()
    w.check([channel(packets=0)], 0.0)
    # 3,000 packets in the window, 2,000 of them duplicates: three copies of each.
    assert w.check([channel(packets=1500, dup_packets=1000)], DUP_WINDOW_S / 2) == []
    (got,) = w.check([channel(packets=3000, dup_packets=2000)], DUP_WINDOW_S)
    assert (got.alert.reason, got.alert.count) == ("duplicates", 2000)
    assert got.detail["new_packets"] == 1000 and got.detail["dup_packets"] == 2000
    # The next window is A/B again: nothing.
    assert w.check([channel(packets=5000, dup_packets=3000)], 2 * DUP_WINDOW_S) == []


def jumps(seq_jumps: int, packets: int = 100, next_seq: int = 500) -> FeedChannel:
    return FeedChannel(id="000010059B", next_seq=next_seq, packets=packets, messages=packets, gaps=0,
                       gap_messages=0, dup_packets=0, seq_jumps=seq_jumps)  # fmt: skip


def test_packets_refused_beyond_max_seq_jump_alert_every_tick_they_grow_naming_the_way_out():
    w = FeedWatch()
    w.check([jumps(0)], 0.0)
    (got,) = w.check([jumps(3)], 0.1)
    assert (got.alert.reason, got.alert.count) == ("seq_jump", 3)
    assert "hft-tui engine reset-channel --channel 000010059B" in got.alert.message
    assert got.detail == {"channel": "000010059B", "seq_jumps": 3, "total_seq_jumps": 3, "next_seq": 500}
    assert w.check([jumps(3)], 0.2) == []


@pytest.mark.parametrize(
    "after",
    [[], [jumps(0, packets=1, next_seq=9_000)]],
    ids=["gone from the map", "made again from its next packet"],
)
def test_a_channel_reset_is_news_once_and_its_counts_start_again(after):
    w = FeedWatch()
    w.check([jumps(5, packets=100, next_seq=500)], 0.0)
    got = w.check(after, 0.1)
    assert [(f.alert.reason, f.detail) for f in got] == [
        ("channel_reset", {"channel": "000010059B", "next_seq_before": 500})
    ]
    assert w.check(after, 0.2) == []


def test_the_channels_map_full_alerts_when_packets_of_new_channels_are_refused():
    w = FeedWatch()
    w.check([], 0.0, channels_full=7)  # the baseline
    assert w.check([], 0.1, channels_full=7) == []
    (got,) = w.check([], 0.2, channels_full=10)
    assert (got.alert.reason, got.alert.count, got.detail) == ("channels_full", 3, {"packets": 3, "total": 10})
