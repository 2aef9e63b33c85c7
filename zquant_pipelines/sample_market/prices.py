"""The offline sample market's price path: daily bars of every stock up to the as-of day.

Owns the daily return model (market factor, stock noise, jumps sized by the price limit,
pull back to an anchor), limit-bounded open/high/low/close in cents, volumes in lots, and
the ex-right adjustment on each dividend and bonus-share day.
"""

import numpy as np

from zquant_pipelines.sample_market.universe import PATH_STREAM, Universe, round_half_up

# Daily returns: beta * market + sigma * noise + rare jumps, pulled back to the stock's
# anchor in hfq terms so prices stay in a realistic range over the years.
_MARKET_DRIFT, _MARKET_VOL = 0.0003, 0.011
_REVERSION = 0.003
# Jumps are sized in units of the stock's limit, so every board has limit-up and
# limit-down days.
_JUMP_CHANCE, _JUMP_SIZE = 0.004, (0.4, 1.5)
# Turnover (%) = base * exp(noise) * (1 + k * |return|), clipped to a realistic band.
_TURNOVER_NOISE, _TURNOVER_MOVE_GAIN, _TURNOVER_RANGE = 0.4, 10.0, (0.1, 20.0)


class PricePath:
    """Prices (cents), volumes (lots) and the trading mask over the first `horizon` days."""

    def __init__(self, universe: Universe, seed: int, horizon: int):
        u = universe
        rng = np.random.default_rng([seed, PATH_STREAM])
        n = u.n_stocks
        self.traded = u.trading_mask(horizon)
        self.open, self.high, self.low, self.close, self.pre_close, self.vol = (
            np.zeros((horizon, n), dtype=np.int32) for _ in range(6)
        )
        n_events = len(u.events)
        self.event_log_adj = np.zeros(n_events)
        self.event_cash_paid = np.zeros(n_events)  # 万元
        by_day = np.argsort(u.events.day, kind="stable")
        bounds = np.searchsorted(u.events.day[by_day], np.arange(horizon + 1))

        last_close = u.issue_price_cents.copy()
        anchor = np.log(last_close)
        log_adj = np.zeros(n)
        share_multiplier = np.ones(n)
        for d in range(horizon):
            events = by_day[bounds[d] : bounds[d + 1]]
            if events.size:
                # Ex-right: the previous close less the dividend, spread over the new shares.
                stock = u.events.stock[events]
                before = last_close[stock]
                cash = round_half_up(before * u.event_cash_yield[events])
                ex_right = np.maximum(
                    round_half_up((before - cash) / (1.0 + u.event_bonus[events])), 1.0
                )
                self.event_log_adj[events] = np.log(before / ex_right)
                self.event_cash_paid[events] = (
                    cash / 100 * u.total_share[stock] * share_multiplier[stock]
                )
                log_adj[stock] += self.event_log_adj[events]
                share_multiplier[stock] *= 1.0 + u.event_bonus[events]
                last_close[stock] = ex_right

            market = rng.normal(_MARKET_DRIFT, _MARKET_VOL)
            noise = rng.standard_normal((5, n))
            jump_draw = rng.random((2, n))
            limit = np.where(d < u.limit_switch_day, u.earlier_limit, u.limit)
            pre = last_close
            jump = np.where(
                jump_draw[0] < _JUMP_CHANCE,
                np.sign(noise[0])
                * limit
                * (_JUMP_SIZE[0] + (_JUMP_SIZE[1] - _JUMP_SIZE[0]) * jump_draw[1]),
                0.0,
            )
            drift = -_REVERSION * (np.log(pre) + log_adj - anchor)
            move = np.clip(u.beta * market + u.sigma * noise[0] + jump + drift, -limit, limit)
            up = round_half_up(pre * (1 + limit))
            down = np.maximum(round_half_up(pre * (1 - limit)), 1.0)
            close = np.clip(round_half_up(pre * (1 + move)), down, up)
            gap = np.clip(0.3 * move + 0.4 * u.sigma * noise[1], -limit, limit)
            open_ = np.clip(round_half_up(pre * (1 + gap)), down, up)
            top, bottom = np.maximum(open_, close), np.minimum(open_, close)
            high = np.clip(round_half_up(top * (1 + 0.5 * u.sigma * np.abs(noise[2]))), top, up)
            low = np.clip(
                round_half_up(bottom * (1 - 0.5 * u.sigma * np.abs(noise[3]))), down, bottom
            )
            turnover = np.clip(
                u.base_turnover
                * np.exp(_TURNOVER_NOISE * noise[4])
                * (1 + _TURNOVER_MOVE_GAIN * np.abs(close / pre - 1)),
                *_TURNOVER_RANGE,
            )
            self.pre_close[d] = pre
            self.open[d] = open_
            self.high[d] = high
            self.low[d] = low
            self.close[d] = close
            self.vol[d] = np.maximum(round_half_up(turnover * u.float_share * share_multiplier), 1)
            last_close = np.where(self.traded[d], close, last_close)
        self.adj_growth = u.events.running_total(self.event_log_adj)
