using JestMesh.Cli.Demo;

namespace JestMesh.Cli.Tests.Demo;

[Trait("Tier", "Unit")]
public sealed class StageTimingTests
{
    private static SpanRecord Span(string name, long startMs, long durationMs, long? sequence = null) =>
        new("svc", name, startMs * 1_000_000, (startMs + durationMs) * 1_000_000,
            sequence is { } s ? new Dictionary<string, string> { ["jestmesh.sequence"] = s.ToString(System.Globalization.CultureInfo.InvariantCulture) } : []);

    [Fact]
    public void Stages_come_in_journey_order_and_per_job_queues_are_one_stage()
    {
        SpanRecord[] spans =
        [
            Span("trainer.step", 0, 30), Span("ingest.publish", 0, 10), Span("ingest.publish", 0, 20),
            Span("publish jestmesh.scored.job.demo-uniform", 0, 4), Span("publish jestmesh.scored.job.demo-jest-f0.8", 0, 6),
            Span("GET /health", 0, 1),
        ];
        var stages = RunResults.StageTimings(spans);
        Assert.Equal(["ingest.publish", "trainer.step", "publish jestmesh.scored.job.*"], stages.Select(s => s.Name));
        Assert.Equal(new StageTiming("ingest.publish", 2, 15, 15, 19.5, 0.03), stages[0]);
        Assert.Equal(2, stages[2].Count);
    }
}
