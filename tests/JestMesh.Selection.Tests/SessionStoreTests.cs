using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.DependencyInjection;

namespace JestMesh.Selection.Tests;

/// <summary>SessionStore on its own (over the real batch log): leases, recording order, bounded per-session state, replay.</summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class SessionStoreTests(SelectionFixture fixture)
{
    [Fact]
    public async Task A_newer_stream_takes_the_session_over_and_the_lease_frees_it_once()
    {
        await using var host = await SelectionHost.StartAsync(fixture.Broker.Options(TestNames.Unique("store-lease")));
        var store = host.Store;
        var session = await store.CreateAsync(Sessions.Open("job", Policy.Uniform), learnerFree: true, CancellationToken.None);

        var first = await store.AttachAsync(session, CancellationToken.None, CancellationToken.None);
        var secondTask = store.AttachAsync(session, CancellationToken.None, CancellationToken.None);
        // The second waits for the first, whose token it cancelled.
        Assert.True(first.Token.IsCancellationRequested);
        Assert.False(secondTask.IsCompleted);
        await first.DisposeAsync();
        await first.DisposeAsync();
        var second = await secondTask.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(second.Token.IsCancellationRequested);
        Assert.Equal(0, session.Gate.CurrentCount);
        await second.DisposeAsync();
        Assert.Equal(1, session.Gate.CurrentCount);

        // A caller that gives up while waiting leaves the session free.
        var holder = await store.AttachAsync(session, CancellationToken.None, CancellationToken.None);
        using var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.AttachAsync(session, giveUp.Token, CancellationToken.None));
        await holder.DisposeAsync();
        Assert.Equal(1, session.Gate.CurrentCount);
    }

    [Fact]
    public async Task Batches_are_recorded_in_order_and_replay_from_any_cursor_with_bounded_state()
    {
        var options = fixture.Broker.Options(TestNames.Unique("store-replay"));
        await using var host = await SelectionHost.StartAsync(options);
        var store = host.Store;
        // Batches are recorded by the job's holder, with its fence.
        var feeds = host.Services.GetRequiredService<JobFeeds>();
        await feeds.DeclareAsync("job", CancellationToken.None);
        using var member = await feeds.JoinAsync("job", "test", DateTime.UtcNow.AddSeconds(30), CancellationToken.None);
        var session = await store.CreateAsync(Sessions.Open("job", Policy.Uniform), learnerFree: true, CancellationToken.None);
        var count = SessionState.RecentRecordTimes + 20;
        for (var sequence = 1; sequence <= count; sequence++)
        {
            await store.RecordAsync(session, new CuratedBatch { SessionId = session.Id, Sequence = sequence, SuperBatchId = $"sb{sequence}" }, member.Feed, CancellationToken.None);
        }
        Assert.Equal(count, session.LastSequence);
        Assert.True(store.IsRecorded("job", "sb1"));
        Assert.False(store.IsRecorded("other", "sb1"));
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            store.RecordAsync(session, new CuratedBatch { SessionId = session.Id, Sequence = count + 5, SuperBatchId = "gap" }, member.Feed, CancellationToken.None));

        // Older than the record times a session keeps (it replays from the session's start) and recent.
        foreach (var cursor in new long[] { 0, 3, count - 10 })
        {
            var replayed = new List<long>();
            await foreach (var batch in store.ReplayAsync(session, cursor, CancellationToken.None).WithCancellation(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token))
            {
                Assert.True(batch.Replayed);
                replayed.Add(batch.Sequence);
            }
            Assert.Equal(Enumerable.Range((int)cursor + 1, count - (int)cursor).Select(i => (long)i), replayed);
        }

        // A new replica reads the same sessions back from the log.
        await using var next = await SelectionHost.StartAsync(options);
        Assert.True(next.Store.TryGet(session.Id, out var loaded));
        Assert.Equal(count, loaded.LastSequence);
        Assert.Equal(session.CreatedUnixSeconds, loaded.CreatedUnixSeconds);
        Assert.Equal(Policy.Uniform, loaded.Settings.Policy);
    }
}
