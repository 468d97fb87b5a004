using JestMesh.Cli.Demo;

namespace JestMesh.Cli.Tests.Demo;

[Trait("Tier", "Unit")]
public sealed class StageTimingTests
{
    private static SpanRecord Span(string name, long startMs, long durationMs, long? sequence = null) =>
        new("svc", name, startMs * 1_000_000, (startMs + durationMs) * 1_000_000,
            sequence is { } s ? new Dictionary<string, string> { ["jestmesh.sequence"] = s.ToString(System.Globalization.CultureInfo.InvariantCulture) } : []);

    [Fact]
    public void Step_wall_times_run_from_one_step_start_to_the_next_and_leave_out_evaluation_steps()
    {
        // Steps 1..4 start every 10 ms; step 2 evaluates (eval every 2), so the next step starts 500 ms later.
        SpanRecord[] spans = [Span("trainer.step", 0, 5, 1), Span("trainer.step", 10, 5, 2), Span("trainer.step", 510, 5, 3), Span("trainer.step", 520, 5, 4)];
        Assert.Equal([10.0, 10.0], DemoRunner.StepWallTimes(spans.Reverse().ToList(), evalEvery: 2));
    }

    [Fact]
    public void Stages_come_in_journey_order_and_per_job_queues_are_one_stage()
    {
        SpanRecord[] spans =
        [
            Span("trainer.step", 0, 30), Span("ingest.publish", 0, 10), Span("ingest.publish", 0, 20),
            Span("publish jestmesh.scored.job.demo-uniform", 0, 4), Span("publish jestmesh.scored.job.demo-jest-f0.8", 0, 6),
            Span("GET /health", 0, 1),
        ];
        var stages = DemoRunner.StageTimings(spans);
        Assert.Equal(["ingest.publish", "trainer.step", "publish jestmesh.scored.job.*"], stages.Select(s => s.Name));
        Assert.Equal(new StageTiming("ingest.publish", 2, 15, 15, 19.5, 0.03), stages[0]);
        Assert.Equal(2, stages[2].Count);
    }
}
