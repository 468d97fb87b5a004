using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.DependencyInjection;

namespace JestMesh.Selection.Tests;

/// <summary>JobFeeds on its own (over the real broker): who creates a job, bounds, ordering and single ownership of deliveries.</summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class JobFeedsTests(SelectionFixture fixture)
{
    private const int N = 32;

    [Fact]
    public async Task Returned_deliveries_come_out_again_in_their_original_order_each_once()
    {
        var options = fixture.Broker.Options(TestNames.Unique("feeds-order"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 5, N);
        var feeds = host.Services.GetRequiredService<JobFeeds>();
        using var member = await feeds.JoinAsync("job", "test", DateTime.UtcNow.AddSeconds(30), CancellationToken.None);
        var feed = member.Feed;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var a = await feed.TakeAsync(deadline.Token);
        var b = await feed.TakeAsync(deadline.Token);
        var c = await feed.TakeAsync(deadline.Token);
        Assert.Equal(published.Take(3).Select(p => p.Id), new[] { a, b, c }.Select(d => d.Batch.Id));

        // Returned in any order (and one of them twice, a bug the feed refuses to turn into a duplicate).
        feed.Return(c);
        feed.Return(a);
        feed.Return(a);
        feed.Return(b);
        var again = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var delivery = await feed.TakeAsync(deadline.Token);
            again.Add(delivery.Batch.Id);
            await feed.AckAsync(delivery);
            await feed.AckAsync(delivery);
        }
        Assert.Equal(published.Select(p => p.Id), again);
        await Task.Delay(300);
        Assert.Equal(0, feed.ReadyCount);
        // The double acks above were refused locally: the channel, and with it the consumer, lives.
        Assert.Equal(1u, (await ProtoClient.QueueAsync(broker, feeds.QueueOf("job"))).Consumers);
    }

    [Fact]
    public async Task Only_the_router_creates_a_job_and_a_job_nobody_ingests_is_not_found()
    {
        var options = fixture.Broker.Options(TestNames.Unique("feeds-exist"));
        await using var host = await SelectionHost.StartAsync(options, settings: new Dictionary<string, string?> { ["Selection:UnknownJobWait"] = "00:00:01" });
        await using var broker = new BrokerClient(options);
        var feeds = host.Services.GetRequiredService<JobFeeds>();
        Assert.False(await feeds.ExistsAsync("ghost", CancellationToken.None));
        var error = await Assert.ThrowsAsync<SelectionException>(() => feeds.JoinAsync("ghost", "open", DateTime.UtcNow.AddSeconds(1), CancellationToken.None));
        Assert.Equal(Grpc.Core.StatusCode.NotFound, error.Code);
        Assert.Contains("open.job 'ghost'", error.Message, StringComparison.Ordinal);
        Assert.False((await ProtoClient.QueueAsync(broker, feeds.QueueOf("ghost"))).Exists);

        // A job the batch log has sessions of exists, whatever the broker shows now (a node
        // restarting): that open is told to retry, not that the job does not exist.
        var unsure = await Assert.ThrowsAsync<SelectionException>(() => feeds.JoinAsync("ghost", "open", DateTime.UtcNow.AddSeconds(1), onRecord: true, CancellationToken.None));
        Assert.Equal(Grpc.Core.StatusCode.Unavailable, unsure.Code);
        Assert.Contains("open.job 'ghost' has sessions in the batch log", unsure.Message, StringComparison.Ordinal);

        // A scored super-batch of the job arrives: the router creates its queue, and a waiting join gets in.
        var join = feeds.JoinAsync("late", "open", DateTime.UtcNow.AddSeconds(30), CancellationToken.None);
        await TestData.PublishAsync(fixture.Feeder, broker, "late", 1, N);
        using var member = await join.WaitAsync(TimeSpan.FromSeconds(30));
        await member.Feed.FirstReceived.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(N, member.Feed.LastSuperBatchSize);
        Assert.True(await feeds.ExistsAsync("late", CancellationToken.None));
    }

    [Fact]
    public async Task Streams_per_job_are_bounded_and_a_slot_is_freed_once()
    {
        var options = fixture.Broker.Options(TestNames.Unique("feeds-bound"));
        await using var host = await SelectionHost.StartAsync(options, settings: new Dictionary<string, string?> { ["Selection:MaxSessionsPerJob"] = "2" });
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 1, N);
        var feeds = host.Services.GetRequiredService<JobFeeds>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var first = await feeds.JoinAsync("job", "open", deadline, CancellationToken.None);
        using var second = await feeds.JoinAsync("job", "open", deadline, CancellationToken.None);
        var error = await Assert.ThrowsAsync<SelectionException>(() => feeds.JoinAsync("job", "open", deadline, CancellationToken.None));
        Assert.Equal(Grpc.Core.StatusCode.ResourceExhausted, error.Code);
        first.Dispose();
        first.Dispose();
        Assert.Equal(1, second.Feed.Sessions);
        using var third = await feeds.JoinAsync("job", "open", deadline, CancellationToken.None);
        Assert.Equal(2, third.Feed.Sessions);
    }
    [Fact]
    public async Task A_super_batch_routed_twice_is_taken_once_and_both_copies_are_acked()
    {
        // Two replicas' routers can each move a copy of one scored super-batch (Scoring published it
        // twice, same id) into the job's queue: the feed holding the first copy acks the second.
        var options = fixture.Broker.Options(TestNames.Unique("feeds-twice"));
        await using var broker = new BrokerClient(options);
        var x = fixture.Feeder.Make("job", 0, N);
        var y = fixture.Feeder.Make("job", 1, N);
        string queue;
        await using (var host = await SelectionHost.StartAsync(options))
        {
            var feeds = host.Services.GetRequiredService<JobFeeds>();
            queue = feeds.QueueOf("job");
            await feeds.DeclareAsync("job", CancellationToken.None);
            Task RouteAsync(ScoredSuperBatch scored) =>
                broker.Publisher.PublishAsync(Messaging.OutgoingMessage.ToQueue(queue, scored.Id, Google.Protobuf.MessageExtensions.ToByteArray(scored)), CancellationToken.None);
            await RouteAsync(x);
            await RouteAsync(y);
            using var member = await feeds.JoinAsync("job", "test", DateTime.UtcNow.AddSeconds(30), CancellationToken.None);
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var first = await member.Feed.TakeAsync(deadline.Token);
            var firstTag = first.Tag;
            var second = await member.Feed.TakeAsync(deadline.Token);
            Assert.Equal([x.Id, y.Id], new[] { first.Batch.Id, second.Batch.Id });
            await RouteAsync(x);
            // The second copy's arrival makes the held delivery ack the newer tag, and the older is acked.
            await Eventually.WaitUntilAsync(() => first.Tag != firstTag, TimeSpan.FromSeconds(60), "the second copy of the first super-batch to arrive");
            Assert.Equal(0, member.Feed.ReadyCount);
            await member.Feed.AckAsync(first);
            await member.Feed.AckAsync(second);
        }
        // The host is gone, its channel with it: an unacked copy would be back in the queue.
        Assert.Equal(0u, (await ProtoClient.QueueAsync(broker, queue)).Ready);
    }
}
