"""Engine configs several test modules attach with."""

from hft_tui.demo.configs import demo_symbols_toml

# The demo's AAPL (configs/demo.toml), no engine-wide limits, no sampled
# updates: every update below the buy target or above the sell target
# trades, as fast as the feed goes.
UNTHROTTLED = """\
[engine]
feed_port = 9000
update_sample = 0

""" + demo_symbols_toml(("AAPL",))
