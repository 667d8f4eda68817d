"""Custom resources, fractions included, as the raylet's scheduler grants them."""

import raysim


def test_custom_fractional_resources(trace_file):
    raysim.init(num_cpus=2, resources={"accel": 1}, trace_path=trace_file)
    try:
        @raysim.remote(resources={"accel": 0.5}, num_cpus=0)
        def half():
            return raysim.get_runtime_context().get_task_id()

        total = raysim.cluster_resources()
        assert (total["CPU"], total["accel"]) == (2.0, 1.0)
        assert len(set(raysim.get([half.remote() for _ in range(4)]))) == 4
    finally:
        raysim.shutdown()
