using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Cli.Tests.Demo;

[Trait("Tier", "Unit")]
public sealed class RunSummaryFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "jestmesh-summary-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static RunSummary Sample() => new()
    {
        Job = "demo-jest-f0.8",
        SessionId = "s-1",
        Policy = "learnability",
        FilterRatio = 0.8,
        Chunks = 16,
        Gain = 1,
        Seed = 7,
        Steps = 40,
        Step = 20,
        Cursor = 20,
        Evaluations = { new RunEvaluation { Step = 10, ZeroShotAcc = 0.5, RAt1 = 0.25 }, new RunEvaluation { Step = 20, ZeroShotAcc = 0.625, RAt1 = 0.375 } },
        WallSeconds = 12.5,
        WaitSeconds = 2.5,
        ScoreSeconds = 3,
        TrainSeconds = 5,
        EvalSeconds = 2,
        DataStall = 0.2,
        StepWallMs = { 10.5, 11.25, 9.75 },
        WrittenUnixMs = 1_700_000_000_000,
    };

    [Fact]
    public void A_written_summary_reads_back_equal_with_lower_camel_case_names_and_no_temporary_file_left()
    {
        var path = RunSummaryFile.PathIn(Path.Combine(_dir, "trainer"));
        RunSummaryFile.Write(path, Sample());
        RunSummaryFile.Write(path, Sample()); // replaces the first one

        var read = RunSummaryFile.TryRead(path);
        var expected = Sample();
        expected.SchemaVersion = RunSummaryFile.SchemaVersion;
        Assert.Equal(expected, read);
        var text = File.ReadAllText(path);
        Assert.Contains("\"schemaVersion\": 1", text, StringComparison.Ordinal);
        Assert.Contains("\"stepWallMs\"", text, StringComparison.Ordinal);
        Assert.Contains("\"zeroShotAcc\"", text, StringComparison.Ordinal);
        // Defaults are written too: a reader sees "finished": false, not a missing field.
        Assert.Contains("\"finished\": false", text, StringComparison.Ordinal);
        Assert.Equal([RunSummaryFile.FileName], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    [Fact]
    public void A_missing_summary_reads_as_null()
    {
        Assert.Null(RunSummaryFile.TryRead(Path.Combine(_dir, "nowhere", RunSummaryFile.FileName)));
    }

    [Fact]
    public void Fields_a_newer_writer_added_are_ignored()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, RunSummaryFile.FileName);
        File.WriteAllText(path, """{ "schemaVersion": 1, "job": "j", "step": 3, "someFutureField": { "x": [1, 2] } }""");
        var read = RunSummaryFile.TryRead(path);
        Assert.Equal("j", read!.Job);
        Assert.Equal(3, read.Step);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(0)]
    public void A_schema_version_other_than_1_is_refused_naming_the_file_and_both_versions(int version)
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, RunSummaryFile.FileName);
        File.WriteAllText(path, $$"""{ "schemaVersion": {{version}}, "job": "j" }""");
        var e = Assert.Throws<InvalidDataException>(() => RunSummaryFile.TryRead(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains($"schema version {version}", e.Message, StringComparison.Ordinal);
        Assert.Contains("version 1 only", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_that_is_not_a_summary_is_refused_naming_the_file()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, RunSummaryFile.FileName);
        File.WriteAllText(path, "{ \"schemaVersion\": ");
        var e = Assert.Throws<InvalidDataException>(() => RunSummaryFile.TryRead(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Writing_a_summary_of_another_version_is_refused()
    {
        var summary = Sample();
        summary.SchemaVersion = 2;
        Assert.Throws<ArgumentException>(() => RunSummaryFile.Write(Path.Combine(_dir, RunSummaryFile.FileName), summary));
    }
}
