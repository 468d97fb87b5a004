using JestMesh.TestKit;

namespace JestMesh.Messaging.Tests;

[Trait("Tier", "Broker")]
public sealed class BrokerRestartTests
{
    [Fact]
    public async Task Broker_restart_mid_run_loses_nothing_and_duplicates_have_no_effect()
    {
        // A broker of its own: restarting the shared one would disturb other test assemblies.
        await using var broker = await TestBroker.StartPrivateAsync(portOffset: 11);
        const int count = 600;
        var options = broker.Options(TestNames.Unique("restart"));
        options.InputQueueMaxLength = 2 * count;
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);

        var outcome = await ForwardingRun.RunAsync(client, count, broker.StopAppAsync, broker.StartAppAsync);

        await ForwardingRun.AssertExactlyOnceAsync(client, count, outcome);
    }
}
