"""hw.core.counters.Counters: per-step and total figures, per part, latched at step end."""


from hw.core.counters import Counters
from sim.amaranth_sim import run_testbench


def test_counters():
    dut = Counters(parts=3, lanes=4)

    async def settle(ctx):  # the inputs pass through the counters' register stages
        for _ in range(Counters.latency - 1):
            await ctx.tick()

    async def tb(ctx):
        for step, plan in enumerate([[(0, 1, 4), (0, 0, 2), (1, 1, 3), (2, 0, 1)],
                                     [(2, 1, 1)]]):
            ctx.set(dut.step_start, 1)
            await ctx.tick()
            ctx.set(dut.step_start, 0)
            ctx.set(dut.running, 1)
            for part, ev, mac in plan:
                ctx.set(dut.part, part)
                ctx.set(dut.ev_inc, [0, 0, 0])   # any part's increment counts for `part`
                ctx.set(dut.ev_inc[step % 3], ev)
                ctx.set(dut.mac_inc, [mac // 2, 0, mac - mac // 2])
                await ctx.tick()
            ctx.set(dut.running, 0)
            ctx.set(dut.step_end, 1)
            await ctx.tick()
            ctx.set(dut.step_end, 0)
            await settle(ctx)
            c = ctx.get(dut.counters)
            assert c.steps == step + 1
            if step == 0:
                assert (c.last_cycles, c.last_events, c.last_macs) == (4, 2, 10)
                pc = ctx.get(dut.part_counters)
                assert [(p.cycles, p.events, p.macs) for p in pc] == \
                    [(2, 1, 6), (1, 1, 3), (1, 0, 1)]
            else:
                assert (c.last_cycles, c.last_events, c.last_macs) == (1, 1, 1)
                assert (c.cycles, c.events, c.macs) == (5, 3, 11)
        ctx.set(dut.clear_last, 1)
        await ctx.tick()
        await settle(ctx)
        c = ctx.get(dut.counters)
        assert (c.last_cycles, c.steps, c.cycles) == (0, 2, 5)

    run_testbench(dut, tb)
