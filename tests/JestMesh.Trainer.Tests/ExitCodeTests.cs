using JestMesh.TestKit;

namespace JestMesh.Trainer.Tests;

/// <summary>The Trainer host's exit code tells a supervisor whether the run finished.</summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class ExitCodeTests(SelectionFixture fixture)
{
    [Fact]
    public async Task A_run_that_fails_exits_non_zero()
    {
        var messaging = fixture.Broker.Options(TestNames.Unique("exit"));
        // No scored super-batch of the job ever arrives: Selection answers the open NOT_FOUND after its wait,
        // which the client does not retry, so the run fails before its first step.
        await using var selection = await SelectionHost.StartAsync(messaging, kestrel: true,
            settings: new Dictionary<string, string?> { ["Selection:UnknownJobWait"] = "00:00:00.5" });
        using var trainer = ServiceProcess.Start("JestMesh.Trainer", messaging, new Dictionary<string, string?>
        {
            ["Trainer:SelectionAddress"] = selection.Address,
            ["Trainer:ApiKey"] = SelectionHost.ApiKey,
            ["Trainer:Job"] = "no-data",
            ["Trainer:Steps"] = "5",
            ["Trainer:EvalEvery"] = "0",
            ["Trainer:CheckpointDirectory"] = Path.Combine(Path.GetTempPath(), $"jm-exit-{Guid.NewGuid():N}"),
        });

        Assert.Equal(1, await trainer.WaitForExitAsync(TimeSpan.FromMinutes(3)));
    }
}
