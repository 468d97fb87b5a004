using Grpc.Core;
using Grpc.Net.Client;
using JestMesh.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>
/// Two Selection replicas as their own processes on a 3-node cluster: one holds a job's feed at a
/// time, the other refuses the job with a retryable status naming it, and when the holder is
/// SIGKILLed mid-session the trainer resumes on the other with no gap and no repeat.
/// </summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class ReplicaTests(SelectionFixture fixture, ITestOutputHelper output)
{
    private const int N = 64;
    private const string Job = "job";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(180);

    [Fact]
    public async Task A_trainer_whose_replica_is_killed_resumes_on_the_other_with_no_gap_and_no_repeat()
    {
        await using var cluster = await TestBroker.StartClusterAsync(portOffset: 41, nodes: 3);
        var options = cluster.Options(TestNames.Unique("replicas"));
        await using var broker = new BrokerClient(options);
        await broker.Connections.DeclareTopologyAsync(CancellationToken.None);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, Job, 6, N);
        var settings = new Dictionary<string, string?> { ["Selection:ApiKey"] = SelectionHost.ApiKey };
        using var first = ServiceProcess.Start("JestMesh.Selection", options, settings);
        using var second = ServiceProcess.Start("JestMesh.Selection", options, settings);
        await Task.WhenAll(first.WaitReadyAsync(Deadline), second.WaitReadyAsync(Deadline));

        // The trainer trains on 3 batches from the first replica, which may have recorded (and
        // sent) more by then: they are recorded, not trained.
        using var timeout = new CancellationTokenSource(Deadline);
        var trained = new List<CuratedBatch>();
        using (var toFirst = Channel(first))
        {
            using var call = new CurationClient(toFirst).StreamBatches(
                new StreamBatchesRequest { Session = Sessions.Open(Job, Policy.EasyReference) }, SelectionHost.Auth(), cancellationToken: timeout.Token);
            while (trained.Count < 3 && await call.ResponseStream.MoveNext(timeout.Token))
            {
                trained.Add(call.ResponseStream.Current);
            }
            var sessionId = trained[0].SessionId;

            // While the first replica holds the job, the second refuses it, retryably, naming the job.
            var refused = await Assert.ThrowsAsync<RpcException>(() => StreamAsync(second, Resume(sessionId, 3), 1, timeout.Token));
            Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
            Assert.Contains($"job '{Job}'", refused.Status.Detail, StringComparison.Ordinal);

            await first.KillAsync();
        }
        var sinceKill = System.Diagnostics.Stopwatch.StartNew();
        published.AddRange(await TestData.PublishAsync(fixture.Feeder, broker, Job, 3, N, first: 6));

        // Resumes on the second replica after cursor 3 as soon as it takes the job over.
        var sessionOf = trained[0].SessionId;
        List<CuratedBatch>? rest = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            try
            {
                rest = await StreamAsync(second, Resume(sessionOf, 3), published.Count - 3, timeout.Token);
                return true;
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable)
            {
                return false;
            }
        }, Deadline, "the second replica to take the job over");
        trained.AddRange(rest!);
        output.WriteLine($"kill to the resumed stream's end on the second replica: {sinceKill.ElapsedMilliseconds} ms (includes publishing 3 more super-batches)");
        output.WriteLine($"the second replica replayed {rest!.Count(b => b.Replayed)} batches the first had recorded past the cursor, then curated {rest!.Count(b => !b.Replayed)}");

        // No gap, no repeat: sequences 1..9, every published super-batch in exactly one batch, each
        // batch a partition of its super-batch, nothing dead-lettered.
        Assert.Equal(Enumerable.Range(1, published.Count).Select(i => (long)i), trained.Select(b => b.Sequence));
        Assert.Equal(published.Select(p => p.Id).Order(), trained.Select(b => b.SuperBatchId).Order());
        foreach (var batch in trained)
        {
            TestData.AssertPartition(batch, published.Single(p => p.Id == batch.SuperBatchId), N / 2);
        }
        Assert.Equal(0u, await broker.Connections.ReadyCountAsync(broker.Topology.DeadLetter, CancellationToken.None));

        // What the trainer trained is what the replicated batch log holds for its session, batch for batch.
        var fromLog = await StreamAsync(second, Resume(sessionOf, 0), published.Count, timeout.Token);
        Assert.All(fromLog, b => Assert.True(b.Replayed));
        Assert.Equal(fromLog.Select(TestData.Identity), trained.Select(TestData.Identity));
    }

    [Fact]
    public async Task A_client_given_every_replica_is_sent_on_by_the_non_holder_and_trains_every_batch_once()
    {
        var options = fixture.Broker.Options(TestNames.Unique("replica-client"));
        await using var broker = new BrokerClient(options);
        await broker.Connections.DeclareTopologyAsync(CancellationToken.None);
        const int Batches = 8;
        var published = await TestData.PublishAsync(fixture.Feeder, broker, Job, Batches, N);
        var settings = new Dictionary<string, string?> { ["Selection:ApiKey"] = SelectionHost.ApiKey };
        using var holder = ServiceProcess.Start("JestMesh.Selection", options, settings);
        using var other = ServiceProcess.Start("JestMesh.Selection", options, settings);
        await Task.WhenAll(holder.WaitReadyAsync(Deadline), other.WaitReadyAsync(Deadline));
        using var timeout = new CancellationTokenSource(Deadline);
        var curate = new CurateSettings
        {
            Job = Job, ApiKey = SelectionHost.ApiKey, Policy = Policy.EasyReference, FilterRatio = 0.5, Chunks = 4, Seed = 1, Gain = 10,
            ReconnectDelay = TimeSpan.FromMilliseconds(20), ReconnectMaxDelay = TimeSpan.FromMilliseconds(200),
        };
        var learner = new RecordingLearner();

        // The session's first batch comes from the replica it alone knows: that replica holds the job from now on.
        using (var toHolder = CurateChannel.Create(holder.Address, new SocketsHttpHandler()))
        {
            learner.Wanted = 1;
            await new CurateSession(toHolder, curate, NullLogger.Instance).RunAsync(learner, timeout.Token);
        }

        // Given only the other replica, the client is refused on every attempt: without the holder's address it could never finish.
        using (var toOther = CurateChannel.Create(other.Address, new SocketsHttpHandler()))
        using (var giveUp = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token))
        {
            var refusedOnly = new CurateSession(toOther, curate, NullLogger.Instance, learner.SessionId, learner.Cursor);
            learner.Wanted = 2;
            var running = refusedOnly.RunAsync(learner, giveUp.Token);
            await Eventually.WaitUntilAsync(() => refusedOnly.Stats.Reconnects >= 3 || running.IsCompleted, Deadline, "three refusals by the replica that does not hold the job");
            await giveUp.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
            Assert.Equal(0, refusedOnly.Stats.Batches);
        }

        // Given both, the non-holder first, in rounds of one batch on one channel (round-robin takes each new call to the
        // next replica): the calls that land on the non-holder are refused and retried on the holder; every batch arrives once.
        using var both = CurateChannel.Create($"{other.Address},{holder.Address}", new SocketsHttpHandler());
        var session = new CurateSession(both, curate, NullLogger.Instance, learner.SessionId, learner.Cursor);
        for (var round = 2; round <= Batches; round++)
        {
            learner.Wanted = round;
            await session.RunAsync(learner, timeout.Token);
        }
        output.WriteLine($"{session.Stats.Reconnects} refusals over {Batches - 1} calls through the balanced channel");

        Assert.Equal(Enumerable.Range(1, Batches).Select(i => (long)i), learner.Trained.Select(b => b.Sequence));
        Assert.Equal(published.Select(p => p.Id).Order(), learner.Trained.Select(b => b.SuperBatchId).Order());
        foreach (var batch in learner.Trained)
        {
            TestData.AssertPartition(batch, published.Single(p => p.Id == batch.SuperBatchId), N / 2);
        }
        Assert.True(session.Stats.Reconnects >= 1, "no call through the balanced channel was refused: the non-holder was never tried, so this proves nothing about moving on");
        Assert.Equal(Batches - 1, session.Stats.Batches);
    }

    /// <summary>A learner-free trainer that keeps what it trained and wants batches up to <see cref="Wanted"/>.</summary>
    private sealed class RecordingLearner : ICurateLearner
    {
        public List<CuratedBatch> Trained { get; } = [];

        public int Wanted { get; set; }

        public string SessionId { get; private set; } = "";

        public long Cursor => Trained.Count == 0 ? 0 : Trained[^1].Sequence;

        public long Remaining => Wanted - Trained.Count;

        public void SessionOpened(string sessionId) => SessionId = sessionId;

        public LearnerScores Score(Candidate candidate) => throw new InvalidOperationException("easy-reference needs no learner scores");

        public void Train(CuratedBatch batch) => Trained.Add(batch);
    }

    private static SessionOpen Resume(string sessionId, long cursor)
    {
        var open = Sessions.Open(Job, Policy.EasyReference);
        open.SessionId = sessionId;
        open.Cursor = cursor;
        return open;
    }

    private static GrpcChannel Channel(ServiceProcess replica) =>
        GrpcChannel.ForAddress(replica.Address, new GrpcChannelOptions { MaxReceiveMessageSize = 64 * 1024 * 1024 });

    private static async Task<List<CuratedBatch>> StreamAsync(ServiceProcess replica, SessionOpen open, int batches, CancellationToken cancellationToken)
    {
        using var channel = Channel(replica);
        using var call = new CurationClient(channel).StreamBatches(new StreamBatchesRequest { Session = open, MaxBatches = batches }, SelectionHost.Auth(), cancellationToken: cancellationToken);
        var received = new List<CuratedBatch>();
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            received.Add(call.ResponseStream.Current);
        }
        return received;
    }
}
