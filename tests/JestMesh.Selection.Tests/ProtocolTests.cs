using Grpc.Core;
using Grpc.Health.V1;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.DependencyInjection;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>Both RPCs in-process over TestServer, against the real broker: auth, bad requests, sessions, replay, cancellation.</summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class ProtocolTests(SelectionFixture fixture)
{
    private const int N = 64;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Missing_or_wrong_api_key_is_unauthenticated_and_health_needs_none()
    {
        var prefix = TestNames.Unique("auth");
        await using var host = await SelectionHost.StartAsync(fixture.Broker.Options(prefix));
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        var request = new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 1 };

        foreach (var headers in new[] { new Metadata(), SelectionHost.Auth("wrong-key-0123456789-wrong") })
        {
            using var call = client.StreamBatches(request, headers);
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        }
        using var curate = client.Curate(new Metadata());
        try
        {
            await curate.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
        }
        catch (RpcException)
        {
            // The service may refuse the call before the client's first write lands; the call's status is read below.
        }

        var curateError = await Assert.ThrowsAsync<RpcException>(() => curate.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.Unauthenticated, curateError.StatusCode);

        var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest { Service = "readiness" });
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Theory]
    [InlineData("policy", "session.policy")]
    [InlineData("filter", "session.filter_ratio")]
    [InlineData("chunks", "session.chunks")]
    [InlineData("job", "session.job")]
    [InlineData("cursor", "session.cursor")]
    [InlineData("learner", "session.policy")]
    [InlineData("max", "max_batches")]
    public async Task Bad_stream_requests_are_invalid_argument_naming_the_field(string fault, string field)
    {
        await using var host = await SelectionHost.StartAsync(fixture.Broker.Options(TestNames.Unique("bad")));
        using var channel = host.Channel();
        var open = Sessions.Open("job", Policy.Uniform);
        var request = new StreamBatchesRequest { Session = open };
        switch (fault)
        {
            case "policy": open.Policy = Policy.Unspecified; break;
            case "filter": open.FilterRatio = 1.5; break;
            case "chunks": open.Chunks = 0; break;
            case "job": open.Job = "no spaces/allowed"; break;
            case "cursor": open.Cursor = 3; break;
            case "learner": open.Policy = Policy.Learnability; break;
            default: request.MaxBatches = -1; break;
        }
        using var call = new CurationClient(channel).StreamBatches(request, SelectionHost.Auth());
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(field, error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Curate_must_start_with_open_and_scores_must_match_the_candidate()
    {
        var prefix = TestNames.Unique("curate-bad");
        await using var host = await SelectionHost.StartAsync(fixture.Broker.Options(prefix));
        await using var broker = new BrokerClient(fixture.Broker.Options(prefix));
        using var channel = host.Channel();
        var client = new CurationClient(channel);

        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Ack = new Ack { Sequence = 1 } });
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Contains("'open'", error.Status.Detail, StringComparison.Ordinal);
        }

        await TestData.PublishAsync(fixture.Feeder, broker, "job", 2, N);
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Equal(CurateResponse.KindOneofCase.Opened, call.ResponseStream.Current.KindCase);
            Assert.True(await call.ResponseStream.MoveNext());
            var candidate = call.ResponseStream.Current.Candidate;
            // Embeddings of the wrong width for this super-batch.
            var scores = new LearnerScores { SuperBatchId = candidate.SuperBatchId, Alpha = 10, Beta = -10 };
            scores.ImageEmbeddings = Protos.V1.Tensor.FromFloat32(new float[N * 3], N, 3);
            scores.TextEmbeddings = Protos.V1.Tensor.FromFloat32(new float[N * 3], N, 3);
            await call.RequestStream.WriteAsync(new CurateRequest { Scores = scores });
            RpcException error;
            while (true)
            {
                try
                {
                    if (!await call.ResponseStream.MoveNext())
                    {
                        throw new InvalidOperationException("stream ended without the expected error");
                    }
                }
                catch (RpcException ex)
                {
                    error = ex;
                    break;
                }
            }
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Contains("scores.image_embeddings", error.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Stream_resumes_after_cursor_with_replay_then_new_batches_also_after_a_restart()
    {
        var prefix = TestNames.Unique("resume");
        var options = fixture.Broker.Options(prefix);
        await using var broker = new BrokerClient(options);
        string sessionId;
        var received = new List<CuratedBatch>();
        List<ScoredSuperBatch> published;
        await using (var host = await SelectionHost.StartAsync(options))
        {
            published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 6, N);
            using var channel = host.Channel();
            using var call = new CurationClient(channel).StreamBatches(
                new StreamBatchesRequest { Session = Sessions.Open("job", Policy.EasyReference), MaxBatches = 3 }, SelectionHost.Auth());
            while (await call.ResponseStream.MoveNext())
            {
                received.Add(call.ResponseStream.Current);
            }
            sessionId = received[0].SessionId;
        }
        Assert.Equal([1L, 2, 3], received.Select(b => b.Sequence));
        Assert.All(received, b => Assert.False(b.Replayed));

        // A new replica reads the batch log back: the client trained on 2, so 3 is replayed, then new ones.
        await using (var host = await SelectionHost.StartAsync(options))
        {
            using var channel = host.Channel();
            var open = Sessions.Open("job", Policy.EasyReference);
            open.SessionId = sessionId;
            open.Cursor = 2;
            using var call = new CurationClient(channel).StreamBatches(new StreamBatchesRequest { Session = open, MaxBatches = 4 }, SelectionHost.Auth());
            var resumed = new List<CuratedBatch>();
            while (await call.ResponseStream.MoveNext())
            {
                resumed.Add(call.ResponseStream.Current);
            }
            Assert.Equal([3L, 4, 5, 6], resumed.Select(b => b.Sequence));
            Assert.True(resumed[0].Replayed);
            Assert.Equal(TestData.Identity(received[2]), TestData.Identity(resumed[0]));
            Assert.All(resumed.Skip(1), b => Assert.False(b.Replayed));
            var all = received.Take(2).Concat(resumed).ToList();
            Assert.Equal(published.Select(p => p.Id).Order(), all.Select(b => b.SuperBatchId).Order());
            foreach (var batch in all)
            {
                TestData.AssertPartition(batch, published.Single(p => p.Id == batch.SuperBatchId), N / 2);
            }
        }
    }

    [Fact]
    public async Task Sessions_of_one_job_get_disjoint_super_batches_and_jobs_are_independent()
    {
        var prefix = TestNames.Unique("disjoint");
        var options = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        // Job "idle" has data but no session: it must not hold up job "a".
        await TestData.PublishAsync(fixture.Feeder, broker, "idle", 20, N);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "a", 8, N, first: 20);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        async Task<List<CuratedBatch>> StreamAsync()
        {
            using var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("a", Policy.Uniform), MaxBatches = 4 }, SelectionHost.Auth());
            var list = new List<CuratedBatch>();
            while (await call.ResponseStream.MoveNext())
            {
                list.Add(call.ResponseStream.Current);
            }
            return list;
        }
        var results = await Task.WhenAll(StreamAsync(), StreamAsync()).WaitAsync(Deadline);
        var ids = results.SelectMany(r => r.Select(b => b.SuperBatchId)).ToList();
        Assert.Equal(8, ids.Distinct().Count());
        Assert.Equal(published.Select(p => p.Id).Order(), ids.Order());
        Assert.NotEqual(results[0][0].SessionId, results[1][0].SessionId);
    }

    [Fact]
    public async Task Cancelled_curate_stream_returns_its_candidates_to_the_job()
    {
        var prefix = TestNames.Unique("cancel");
        var options = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 3, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        var seen = new List<string>();
        using (var cancel = new CancellationTokenSource())
        {
            using var call = client.Curate(SelectionHost.Auth(), cancellationToken: cancel.Token);
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            while (seen.Count < 2 && await call.ResponseStream.MoveNext())
            {
                if (call.ResponseStream.Current.KindCase == CurateResponse.KindOneofCase.Candidate)
                {
                    seen.Add(call.ResponseStream.Current.Candidate.SuperBatchId);
                }
            }
            await cancel.CancelAsync();
        }
        Assert.Equal(2, seen.Count);

        // Nothing was recorded from the cancelled session: a learner-free session of the job now gets all three.
        using var stream = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 3 }, SelectionHost.Auth());
        var ids = new List<string>();
        while (await stream.ResponseStream.MoveNext().WaitAsync(Deadline))
        {
            ids.Add(stream.ResponseStream.Current.SuperBatchId);
        }
        Assert.Equal(published.Select(p => p.Id).Order(), ids.Order());
    }

    [Fact]
    public async Task A_batch_the_log_cannot_take_is_not_sent_and_its_super_batch_goes_to_the_next_session()
    {
        var options = fixture.Broker.Options(TestNames.Unique("nolog"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 3, N);
        var log = host.Services.GetRequiredService<BatchLog>();
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        var first = new List<CuratedBatch>();
        using (var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 1 }, SelectionHost.Auth()))
        {
            while (await call.ResponseStream.MoveNext().WaitAsync(Deadline))
            {
                first.Add(call.ResponseStream.Current);
            }
        }
        var connection = await broker.Connections.PublishConnectionAsync(CancellationToken.None);
        await using (var admin = await connection.CreateChannelAsync())
        {
            // An operator deletes the batch log: the session's next record has nowhere durable to go.
            await admin.QueueDeleteAsync(log.Name, ifUnused: false, ifEmpty: false);
        }
        var resume = Sessions.Open("job", Policy.Uniform);
        resume.SessionId = first[0].SessionId;
        resume.Cursor = 1;
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = client.StreamBatches(new StreamBatchesRequest { Session = resume, MaxBatches = 2 }, SelectionHost.Auth());
            while (await call.ResponseStream.MoveNext().WaitAsync(Deadline))
            {
                Assert.Fail($"batch {call.ResponseStream.Current.Sequence} was sent without being recorded");
            }
        });
        Assert.True(error.StatusCode == StatusCode.Unavailable, $"{error.StatusCode}: {error.Status.Detail}");
        Assert.Contains("batch log refused batch 2", error.Status.Detail, StringComparison.Ordinal);

        // With the log back, a new session gets the other two super-batches: none was lost or half-used.
        await log.DeclareAsync(CancellationToken.None);
        using var stream = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 2 }, SelectionHost.Auth());
        var ids = new List<string> { first[0].SuperBatchId };
        while (await stream.ResponseStream.MoveNext().WaitAsync(Deadline))
        {
            ids.Add(stream.ResponseStream.Current.SuperBatchId);
        }
        Assert.Equal(published.Select(p => p.Id).Order(), ids.Order());
    }

    [Fact]
    public async Task Poison_scored_messages_are_dead_lettered_with_a_reason()
    {
        var prefix = TestNames.Unique("poison");
        var options = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var nan = fixture.Feeder.Make("job", 0, N);
        var values = nan.ReferenceImageEmbeddings.ToFloat32("x", N, -1);
        values[5] = float.NaN;
        nan.ReferenceImageEmbeddings = Protos.V1.Tensor.FromFloat32(values, N, values.Length / N);
        await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, nan);
        await broker.Publisher.PublishAsync(Messaging.OutgoingMessage.ToQueue(broker.Topology.Scored, "scored/garbage", new byte[] { 0xff, 0x01, 0x02 }), CancellationToken.None);

        var dead = new List<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>();
        await Eventually.WaitUntilAsync(async () =>
        {
            dead.AddRange(await broker.GetAllAsync(broker.Topology.DeadLetter));
            return dead.Count >= 2;
        }, Deadline, "two dead-lettered messages");
        var reasons = dead.ToDictionary(d => d.MessageId!, d => Messaging.MessagingTelemetry.HeaderText(d.Headers[Messaging.QueueTopology.ReasonHeader])!);
        Assert.Contains("NaN", reasons["scored/" + nan.Id], StringComparison.Ordinal);
        Assert.Contains("not a ScoredSuperBatch", reasons["scored/garbage"], StringComparison.Ordinal);
    }
}

