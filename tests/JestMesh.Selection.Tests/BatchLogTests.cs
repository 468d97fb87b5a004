using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection.Tests;

/// <summary>The batch log's reads over the real broker.</summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class BatchLogTests(SelectionFixture fixture)
{
    [Fact]
    public async Task A_read_whose_consumer_the_broker_cancels_ends_with_an_error_instead_of_waiting_for_ever()
    {
        var options = fixture.Broker.Options(TestNames.Unique("log-read"));
        await using var broker = new BrokerClient(options);
        var log = new BatchLog(broker.Connections, broker.Publisher, Options.Create(new SelectionOptions()));
        await log.DeclareAsync(CancellationToken.None);
        await log.AppendAsync(new SelectionLogRecord { Marker = "a" }, "marker/a", CancellationToken.None);
        await log.AppendAsync(new SelectionLogRecord { Marker = "b" }, "marker/b", CancellationToken.None);

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var read = log.ReadAsync("first", deadline.Token).GetAsyncEnumerator(deadline.Token);
        Assert.True(await read.MoveNextAsync());
        Assert.Equal("a", read.Current.Record.Marker);
        Assert.True(await read.MoveNextAsync());
        Assert.Equal("b", read.Current.Record.Marker);

        // The broker ends the consumer (as it does when the stream member it reads from is lost): the
        // read waiting for a third record must fail, naming the log, not wait until its caller's deadline.
        var connection = await broker.Connections.PublishConnectionAsync(CancellationToken.None);
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeleteAsync(log.Name, ifUnused: false, ifEmpty: false);
        }
        var error = await Assert.ThrowsAsync<BatchLogReadInterruptedException>(async () => await read.MoveNextAsync());
        Assert.Contains(log.Name, error.Message, StringComparison.Ordinal);
        Assert.False(deadline.IsCancellationRequested, "the read ended only at the caller's deadline");
        await read.DisposeAsync();
    }
}
