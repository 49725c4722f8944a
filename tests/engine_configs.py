"""Engine configs several test modules attach with."""

# One symbol, no engine-wide limits, no sampled updates: every update below
# the buy target or above the sell target trades, as fast as the feed goes.
UNTHROTTLED = """\
[engine]
feed_port = 9000
update_sample = 0

[symbols.AAPL]
buy_target = 190.25
sell_target = 190.75
base_qty = 100
scale_qty = 10
max_order_qty = 1000
max_position = 5000
"""
