using System.Diagnostics.Metrics;
using Grpc.Core;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>
/// Sessions over their lifetime (real broker, real gRPC): idle ones leave memory and come back from
/// the batch log; a resume of a session nobody opened costs the log nothing; a replica that lost
/// its job sends no batch the log does not keep.
/// </summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class SessionLifetimeTests(SelectionFixture fixture)
{
    private const int N = 32;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task An_idle_session_leaves_memory_after_the_timeout_and_resumes_from_the_log_with_no_gap_and_no_repeat()
    {
        var options = fixture.Broker.Options(TestNames.Unique("evict"));
        await using var broker = new BrokerClient(options);
        await using var host = await SelectionHost.StartAsync(options, kestrel: true,
            settings: new Dictionary<string, string?> { ["Selection:SessionIdleTimeout"] = "00:00:01" });
        using var live = new LiveSessionsGauge(host.Services.GetRequiredService<BatchLog>().Name);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 6, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);

        // The trainer trains on 3 batches and goes away; the service may have recorded more ahead of it.
        var trained = new List<CuratedBatch>();
        using (var stop = new CancellationTokenSource())
        {
            using var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.EasyReference) }, SelectionHost.Auth(), cancellationToken: stop.Token);
            while (trained.Count < 3 && await call.ResponseStream.MoveNext().WaitAsync(Deadline))
            {
                trained.Add(call.ResponseStream.Current);
            }
            // Attached: not evicted, however long the trainer takes.
            Assert.Equal(1, live.Read());
            await stop.CancelAsync();
        }
        var sessionId = trained[0].SessionId;
        Assert.Equal([1L, 2, 3], trained.Select(b => b.Sequence));

        await Eventually.WaitUntilAsync(() => live.Read() == 0, Deadline, "the idle session to leave memory");
        Assert.False(host.Store.TryGet(sessionId, out _));

        // It comes back with its id and cursor: rebuilt from the log, it replays what was recorded
        // after the cursor and curates the rest.
        var resume = Sessions.Open("job", Policy.EasyReference);
        resume.SessionId = sessionId;
        resume.Cursor = 3;
        using var resumed = client.StreamBatches(new StreamBatchesRequest { Session = resume, MaxBatches = 3 }, SelectionHost.Auth());
        while (await resumed.ResponseStream.MoveNext().WaitAsync(Deadline))
        {
            trained.Add(resumed.ResponseStream.Current);
        }
        Assert.Equal([1L, 2, 3, 4, 5, 6], trained.Select(b => b.Sequence));
        Assert.Equal(published.Select(p => p.Id).Order(), trained.Select(b => b.SuperBatchId).Order());
        foreach (var batch in trained)
        {
            TestData.AssertPartition(batch, published.Single(p => p.Id == batch.SuperBatchId), N / 2);
        }
        Assert.True(host.Store.TryGet(sessionId, out var rebuilt));
        Assert.Equal(6, rebuilt.LastSequence);
    }

    [Fact]
    public async Task A_resume_of_a_session_the_log_never_recorded_is_not_found_and_appends_nothing_or_shares_a_bounded_read()
    {
        var options = fixture.Broker.Options(TestNames.Unique("ghost-session"));
        await using var broker = new BrokerClient(options);
        await using var host = await SelectionHost.StartAsync(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 1, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        // This replica serves the job (its takeover is the one marker a job costs).
        using (var first = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 1 }, SelectionHost.Auth()))
        {
            Assert.True(await first.ResponseStream.MoveNext().WaitAsync(Deadline));
        }
        var log = host.Services.GetRequiredService<BatchLog>();
        var before = await RecordsBeforeAMarkerAsync(log);

        for (var i = 0; i < 3; i++)
        {
            var ghost = Sessions.Open("job", Policy.Uniform);
            ghost.SessionId = Guid.NewGuid().ToString("N");
            using var call = client.StreamBatches(new StreamBatchesRequest { Session = ghost, MaxBatches = 1 }, SelectionHost.Auth());
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(Deadline));
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
            Assert.Contains($"session.session_id '{ghost.SessionId}' is not a session of job 'job'", error.Status.Detail, StringComparison.Ordinal);
        }

        // Only the first counting marker was added in between.
        var afterNamed = await RecordsBeforeAMarkerAsync(log);
        Assert.Equal(before + 1, afterNamed);

        // Resumes that name no job must read the log to its end to learn the session's job: ten at once
        // share their reads (at most one a second), each still NOT_FOUND.
        var unnamed = Enumerable.Range(0, 10).Select(async _ =>
        {
            using var call = client.StreamBatches(new StreamBatchesRequest { Session = new SessionOpen { SessionId = Guid.NewGuid().ToString("N") }, MaxBatches = 1 }, SelectionHost.Auth());
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(Deadline));
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
        }).ToList();
        await Task.WhenAll(unnamed);
        var reads = await RecordsBeforeAMarkerAsync(log) - afterNamed - 1;
        Assert.InRange(reads, 1, 9);
    }

    [Fact]
    public async Task A_replica_that_lost_its_job_sends_no_batch_and_its_late_record_counts_for_no_reader()
    {
        var options = fixture.Broker.Options(TestNames.Unique("fence"));
        await using var broker = new BrokerClient(options);
        await using var a = await SelectionHost.StartAsync(options);
        await using var b = await SelectionHost.StartAsync(options);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 4, N);

        // A trainer's session on A, with A's two candidates in flight (CandidatesAhead = 2: A takes no more).
        using var channelA = a.Channel();
        using var callA = new CurationClient(channelA).Curate(SelectionHost.Auth());
        await callA.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
        var sessionId = (await ProtoClient.NextAsync(callA))!.Opened.SessionId;
        var candidates = new List<Candidate>();
        while (candidates.Count < 2)
        {
            candidates.Add((await ProtoClient.NextAsync(callA))!.Candidate);
        }

        // A loses its holding connection (its node, say) while its other connections live, and B
        // takes the job over: B's takeover marker goes into the log.
        var holding = await a.Services.GetRequiredService<BrokerConnections>().HoldingConnectionAsync(CancellationToken.None);
        await holding.CloseAsync();
        var feedsB = b.Services.GetRequiredService<JobFeeds>();
        JobMembership? taken = null;
        await Eventually.WaitUntilAsync(async () =>
        {
            try
            {
                taken = await feedsB.JoinAsync("job", "test", DateTime.UtcNow.AddSeconds(30), CancellationToken.None);
                return true;
            }
            catch (SelectionException ex) when (ex.Code == StatusCode.Unavailable)
            {
                return false;
            }
        }, Deadline, "B to take the job once A's lock is gone");
        taken!.Dispose();

        // The trainer's scores reach A now: A records the batch (after B's marker), cannot confirm
        // the job is still its own, and sends nothing.
        await callA.RequestStream.WriteAsync(new CurateRequest { Scores = ProtoClient.ScoresFor(published.Single(p => p.Id == candidates[0].SuperBatchId)) });
        var seen = new List<CurateResponse>();
        var error = await ProtoClient.ErrorAsync(callA, seen);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("could not confirm it still holds job 'job'", error.Status.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain(seen, r => r.KindCase == CurateResponse.KindOneofCase.Batch);

        // The trainer resumes on B with its cursor (0): B never counted A's late record, so batch 1
        // is curated afresh, from the super-batches A held (back in the job's queue).
        using var channelB = b.Channel();
        using var callB = new CurationClient(channelB).Curate(SelectionHost.Auth());
        var resume = Sessions.Open("job", Policy.Learnability);
        resume.SessionId = sessionId;
        await callB.RequestStream.WriteAsync(new CurateRequest { Open = resume });
        Assert.Equal(sessionId, (await ProtoClient.NextAsync(callB))!.Opened.SessionId);
        var (_, fromB) = await ProtoClient.TrainAsync(callB, published, 1);
        var batch1 = Assert.Single(fromB);
        Assert.Equal(1, batch1.Sequence);
        Assert.False(batch1.Replayed);

        // The log holds both records of batch 1, A's after B's takeover marker.
        var log = b.Services.GetRequiredService<BatchLog>();
        var records = await ReadToAMarkerAsync(log);
        var takeoverB = records.Last(r => r.Record.KindCase == SelectionLogRecord.KindOneofCase.Marker && r.Record.Job == "job").Offset;
        var ofBatch1 = records.Where(r => r.Record.Batch is { } x && x.SessionId == sessionId && x.Sequence == 1).ToList();
        Assert.Equal(2, ofBatch1.Count);
        Assert.True(ofBatch1[0].Offset > takeoverB && ofBatch1[0].Record.Fence < takeoverB, "A's record follows B's takeover with A's older fence");
        Assert.Equal(takeoverB, ofBatch1[1].Record.Fence);

        // Every reader counts B's record only: a replica starting now, and its replay.
        await using var c = await SelectionHost.StartAsync(options);
        Assert.True(c.Store.TryGet(sessionId, out var loaded));
        Assert.Equal(1, loaded.LastSequence);
        var replayed = new List<CuratedBatch>();
        using var replayDeadline = new CancellationTokenSource(Deadline);
        await foreach (var r in c.Store.ReplayAsync(loaded, 0, replayDeadline.Token))
        {
            replayed.Add(r);
        }
        var again = Assert.Single(replayed);
        Assert.Equal(TestData.Identity(batch1), TestData.Identity(again));
        Assert.Equal(batch1.RecordedUnixMs, again.RecordedUnixMs);
        Assert.True(c.Store.IsRecorded("job", batch1.SuperBatchId));
    }

    /// <summary>How many records the log holds before a marker appended now.</summary>
    private static async Task<int> RecordsBeforeAMarkerAsync(BatchLog log) => (await ReadToAMarkerAsync(log)).Count;

    /// <summary>Every record of the log before a marker appended now.</summary>
    private static async Task<List<LoggedRecord>> ReadToAMarkerAsync(BatchLog log)
    {
        var marker = "test-" + Guid.NewGuid().ToString("N");
        await log.AppendAsync(new SelectionLogRecord { Marker = marker }, $"marker/{marker}", CancellationToken.None);
        var records = new List<LoggedRecord>();
        using var deadline = new CancellationTokenSource(Deadline);
        await foreach (var record in log.ReadAsync("first", deadline.Token))
        {
            if (record.Record.Marker == marker)
            {
                return records;
            }
            records.Add(record);
        }
        throw new InvalidOperationException("the log ended before the marker");
    }

    /// <summary>Reads the live-sessions gauge of one replica (by its batch log) through a MeterListener, as an exporter would.</summary>
    private sealed class LiveSessionsGauge : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly string _log;
        private int? _last;

        public LiveSessionsGauge(string log)
        {
            _log = log;
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == SelectionTelemetry.Name && instrument.Name == Telemetry.Metrics.SelectionSessionsLive)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == Telemetry.Attributes.SelectionLog && Equals(tag.Value, _log))
                    {
                        _last = value;
                    }
                }
            });
            _listener.Start();
        }

        public int? Read()
        {
            _last = null;
            _listener.RecordObservableInstruments();
            return _last;
        }

        public void Dispose() => _listener.Dispose();
    }
}
