using Grpc.Core;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.DependencyInjection;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>
/// The defects an independent client found (issue "Defects an independent client found in
/// Selection"), each reproduced over real gRPC against the real broker with a client that speaks
/// only the protos.
/// </summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class DefectTests(SelectionFixture fixture)
{
    private const int N = 64;

    /// <summary>Short waits for jobs nobody ingests, so the tests that need them stay quick.</summary>
    private static readonly Dictionary<string, string?> QuickUnknownJob = new() { ["Selection:UnknownJobWait"] = "00:00:02" };

    // D1 (and D5: rows that are not L2-normalised are refused like the other bad scores).
    [Theory]
    [InlineData("rows")]
    [InlineData("nan")]
    [InlineData("dtype")]
    [InlineData("norm")]
    public async Task After_rejected_scores_the_next_session_gets_every_remaining_super_batch_once_in_order(string fault)
    {
        var options = fixture.Broker.Options(TestNames.Unique("d1-" + fault));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 6, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);

        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            var (candidates, batches) = await ProtoClient.TrainAsync(call, published, 1);
            Assert.Equal(published[0].Id, batches[0].SuperBatchId);
            // A client scores only a candidate it has: wait for super-batch 1's.
            while (!candidates.Contains(published[1].Id))
            {
                var next = await ProtoClient.NextAsync(call);
                if (next?.KindCase == CurateResponse.KindOneofCase.Candidate)
                {
                    candidates.Add(next.Candidate.SuperBatchId);
                }
            }
            var bad = ProtoClient.ScoresFor(published[1]);
            var values = bad.ImageEmbeddings.ToFloat32("x", N, -1);
            var dim = values.Length / N;
            switch (fault)
            {
                case "rows":
                    bad.ImageEmbeddings = Protos.V1.Tensor.FromFloat32(values.AsSpan(0, (N - 1) * dim), N - 1, dim);
                    break;
                case "nan":
                    values[3] = float.NaN;
                    bad.ImageEmbeddings = Protos.V1.Tensor.FromFloat32(values, N, dim);
                    break;
                case "dtype":
                    bad.ImageEmbeddings.Dtype = DType.Int32;
                    break;
                default:
                    for (var i = 0; i < values.Length; i++)
                    {
                        values[i] *= 2;
                    }
                    bad.ImageEmbeddings = Protos.V1.Tensor.FromFloat32(values, N, dim);
                    break;
            }
            await call.RequestStream.WriteAsync(new CurateRequest { Scores = bad });
            var error = await ProtoClient.ErrorAsync(call);
            Assert.True(error.StatusCode == StatusCode.InvalidArgument && error.Status.Detail.Contains("scores.image_embeddings", StringComparison.Ordinal),
                $"{error.StatusCode}: {error.Status.Detail}");
        }

        // The next session of the job: super-batches 1..5, each once, in order; the job keeps its consumer.
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            var (candidates, batches) = await ProtoClient.TrainAsync(call, published, 5);
            Assert.Equal(published.Skip(1).Select(p => p.Id), batches.Select(b => b.SuperBatchId));
            Assert.Equal(published.Skip(1).Select(p => p.Id), candidates);
        }
        var queue = await ProtoClient.QueueAsync(broker, host.Services.GetRequiredService<JobFeeds>().QueueOf("job"));
        Assert.Equal(1u, queue.Consumers);
    }

    // D2
    [Fact]
    public async Task A_job_nobody_ingests_is_not_found_after_the_wait_and_gets_no_queue()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d2"));
        await using var host = await SelectionHost.StartAsync(options, settings: QuickUnknownJob);
        await using var broker = new BrokerClient(options);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("nobody", Policy.Learnability) });
            var error = await ProtoClient.ErrorAsync(call, deadline: TimeSpan.FromSeconds(30));
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
            Assert.Contains("open.job", error.Status.Detail, StringComparison.Ordinal);
        }
        using (var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("nobody", Policy.Uniform) }, SelectionHost.Auth()))
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(StatusCode.NotFound, error.StatusCode);
        }
        Assert.False((await ProtoClient.QueueAsync(broker, host.Services.GetRequiredService<JobFeeds>().QueueOf("nobody"))).Exists);
    }

    // D2: a bound on the sessions of one job.
    [Fact]
    public async Task Sessions_of_a_job_beyond_the_bound_are_resource_exhausted()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d2-bound"));
        await using var host = await SelectionHost.StartAsync(options, settings: new Dictionary<string, string?> { ["Selection:MaxSessionsPerJob"] = "2" });
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 4, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        using var first = client.Curate(SelectionHost.Auth());
        using var second = client.Curate(SelectionHost.Auth());
        foreach (var call in new[] { first, second })
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            Assert.Equal(CurateResponse.KindOneofCase.Opened, (await ProtoClient.NextAsync(call))!.KindCase);
        }
        using var third = client.Curate(SelectionHost.Auth());
        await third.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
        var error = await ProtoClient.ErrorAsync(third);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("MaxSessionsPerJob", error.Status.Detail, StringComparison.Ordinal);
    }

    // D3
    [Theory]
    [InlineData("filter_ratio")]
    [InlineData("policy")]
    [InlineData("chunks")]
    [InlineData("gain")]
    [InlineData("seed")]
    [InlineData("loss")]
    [InlineData("greedy")]
    public async Task A_resume_with_settings_that_differ_from_the_session_is_invalid_argument_naming_the_field(string field)
    {
        var options = fixture.Broker.Options(TestNames.Unique("d3"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 3, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        string sessionId;
        using (var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 1 }, SelectionHost.Auth()))
        {
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
            sessionId = call.ResponseStream.Current.SessionId;
        }
        var resume = Sessions.Open("job", Policy.Uniform);
        resume.SessionId = sessionId;
        resume.Cursor = 1;
        switch (field)
        {
            case "filter_ratio": resume.FilterRatio = 0.75; break;
            case "policy": resume.Policy = Policy.EasyReference; break;
            case "chunks": resume.Chunks = 2; break;
            case "gain": resume.Gain = 3; break;
            case "seed": resume.Seed = 99; break;
            case "loss": resume.Loss = LossKind.PerExample; break;
            default: resume.Greedy = true; break;
        }
        using var resumed = client.StreamBatches(new StreamBatchesRequest { Session = resume, MaxBatches = 1 }, SelectionHost.Auth());
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await resumed.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline))
            {
            }
        });
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("session." + field, error.Status.Detail, StringComparison.Ordinal);
    }

    // D3: unset fields on a resume mean "as the session" (what the trainer and the docs rely on).
    [Fact]
    public async Task A_resume_with_only_the_session_id_and_cursor_continues_the_session()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d3-same"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 3, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        string sessionId;
        using (var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 1 }, SelectionHost.Auth()))
        {
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
            sessionId = call.ResponseStream.Current.SessionId;
        }
        using var resumed = client.StreamBatches(new StreamBatchesRequest { Session = new SessionOpen { SessionId = sessionId, Cursor = 1 }, MaxBatches = 1 }, SelectionHost.Auth());
        Assert.True(await resumed.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
        Assert.Equal(2, resumed.ResponseStream.Current.Sequence);
    }

    // D4
    [Fact]
    public async Task Unscored_candidates_of_an_ended_stream_come_back_first_and_in_order()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d4"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 8, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        string sessionId;
        using (var cancel = new CancellationTokenSource())
        {
            using var call = client.Curate(SelectionHost.Auth(), cancellationToken: cancel.Token);
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            var (candidates, batches) = await ProtoClient.TrainAsync(call, published, 2);
            sessionId = batches[0].SessionId;
            // Wait until super-batches 2 and 3 are in flight at this client, then drop the stream.
            while (candidates.Count < 4)
            {
                var next = await ProtoClient.NextAsync(call);
                if (next?.KindCase == CurateResponse.KindOneofCase.Candidate)
                {
                    candidates.Add(next.Candidate.SuperBatchId);
                }
            }
            Assert.Equal(published.Take(4).Select(p => p.Id), candidates);
            await cancel.CancelAsync();
        }
        await Task.Delay(500);
        var resume = Sessions.Open("job", Policy.Learnability);
        resume.SessionId = sessionId;
        resume.Cursor = 2;
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = resume });
            var (candidates, batches) = await ProtoClient.TrainAsync(call, published, 6);
            Assert.Equal(published.Skip(2).Select(p => p.Id), batches.Select(b => b.SuperBatchId));
            Assert.Equal(published.Skip(2).Select(p => p.Id), candidates);
            Assert.Equal([3L, 4, 5, 6, 7, 8], batches.Select(b => b.Sequence));
        }
    }

    // D5: N, b and the reference hash in `opened` of a job's first session.
    [Fact]
    public async Task The_first_session_of_a_job_is_told_n_b_and_the_reference_hash()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d5-opened"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 2, N);
        using var channel = host.Channel();
        using var call = new CurationClient(channel).Curate(SelectionHost.Auth());
        await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
        var opened = (await ProtoClient.NextAsync(call))!.Opened;
        Assert.NotNull(opened);
        Assert.Equal(N, opened.SuperBatchSize);
        Assert.Equal(N / 2, opened.BatchSize);
        Assert.Equal("test-reference", opened.ReferenceCheckpointSha256);
    }

    // D5: settings that cannot fit the job's known N are refused at open, before any candidate.
    [Theory]
    [InlineData("chunks", 3, 0.5)]
    [InlineData("chunks", 64, 0.5)]
    [InlineData("filter_ratio", 4, 0.9999)]
    public async Task Settings_that_cannot_fit_the_jobs_super_batches_are_refused_at_open(string field, int chunks, double filterRatio)
    {
        var options = fixture.Broker.Options(TestNames.Unique("d5-fit"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 3, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability, filterRatio: filterRatio, chunks: chunks) });
            var seen = new List<CurateResponse>();
            var error = await ProtoClient.ErrorAsync(call, seen);
            Assert.Empty(seen);
            Assert.True(error.StatusCode == StatusCode.FailedPrecondition, $"{error.StatusCode}: {error.Status.Detail}");
            Assert.Contains("open.chunks", error.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("open." + field, error.Status.Detail, StringComparison.Ordinal);
        }
        // Nothing was taken from the job: a fitting session gets every super-batch, in order.
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            var (_, batches) = await ProtoClient.TrainAsync(call, published, 3);
            Assert.Equal(published.Select(p => p.Id), batches.Select(b => b.SuperBatchId));
        }
    }

    // D5: where N was not what the open saw, the first candidate that does not fit is refused before
    // the client scores it, and goes back to the job once (no D1).
    [Fact]
    public async Task A_candidate_the_settings_cannot_fit_is_refused_before_it_is_sent_and_returned_once()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d5-candidate"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        var first = await TestData.PublishAsync(fixture.Feeder, broker, "job", 1, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        using (var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 1 }, SelectionHost.Auth()))
        {
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
            Assert.Equal(first[0].Id, call.ResponseStream.Current.SuperBatchId);
        }
        // The job's super-batches had N = 64; the next has N = 60 (b = 30 at f = 0.5), then 64 again.
        var odd = fixture.Feeder.Make("job", 1, 60, offset: 1000);
        var after = fixture.Feeder.Make("job", 2, N);
        using (var call = client.Curate(SelectionHost.Auth()))
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability, chunks: 4) });
            Assert.Equal(N, (await ProtoClient.NextAsync(call))!.Opened.SuperBatchSize);
            await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, odd);
            await ScoredFeeder.PublishAsync(broker.Publisher, broker.Topology, after);
            var seen = new List<CurateResponse>();
            var error = await ProtoClient.ErrorAsync(call, seen);
            Assert.Empty(seen);
            Assert.True(error.StatusCode == StatusCode.FailedPrecondition, $"{error.StatusCode}: {error.Status.Detail}");
            Assert.Contains("chunks = 4", error.Status.Detail, StringComparison.Ordinal);
        }
        // A session whose chunks fit N = 60 gets it, once, then the next one.
        using (var call = client.StreamBatches(new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform, chunks: 2), MaxBatches = 2 }, SelectionHost.Auth()))
        {
            var ids = new List<string>();
            while (await call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline))
            {
                ids.Add(call.ResponseStream.Current.SuperBatchId);
            }
            Assert.Equal([odd.Id, after.Id], ids);
        }
    }

    // D5: an unknown loss is refused like an unknown policy.
    [Fact]
    public async Task An_unknown_loss_is_invalid_argument_like_an_unknown_policy()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d5-loss"));
        await using var host = await SelectionHost.StartAsync(options);
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 1, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        foreach (var (open, field) in new[]
        {
            (Sessions.Open("job", (Policy)99), "open.policy"),
            (new SessionOpen(Sessions.Open("job", Policy.Learnability)) { Loss = (LossKind)99 }, "open.loss"),
        })
        {
            using var call = client.Curate(SelectionHost.Auth());
            await call.RequestStream.WriteAsync(new CurateRequest { Open = open });
            var error = await ProtoClient.ErrorAsync(call);
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Contains(field, error.Status.Detail, StringComparison.Ordinal);
        }
    }

    // D6
    [Fact]
    public async Task Client_strings_in_statuses_are_bounded_and_escaped()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d6"));
        await using var host = await SelectionHost.StartAsync(options);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        var huge = new string('x', 10_000);
        var opens = new[]
        {
            Sessions.Open(huge, Policy.Uniform),
            Sessions.Open("nul\0job\u001b[31m", Policy.Uniform),
            new SessionOpen(Sessions.Open("job", Policy.Uniform)) { SessionId = huge },
            new SessionOpen(Sessions.Open("job", Policy.Uniform)) { SessionId = "a\0b\nc" },
        };
        foreach (var open in opens)
        {
            using var call = client.StreamBatches(new StreamBatchesRequest { Session = open }, SelectionHost.Auth());
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
            Assert.True(error.StatusCode is StatusCode.InvalidArgument or StatusCode.NotFound, $"{error.StatusCode}: {error.Status.Detail[..Math.Min(200, error.Status.Detail.Length)]}");
            Assert.InRange(error.Status.Detail.Length, 1, 400);
            Assert.DoesNotContain(error.Status.Detail, c => char.IsControl(c));
        }
    }

    // D7
    [Fact]
    public async Task Oversized_credentials_and_the_wrong_scheme_are_unauthenticated_saying_why()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d7"));
        await using var host = await SelectionHost.StartAsync(options, kestrel: true);
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 1, N);
        using var channel = host.Channel();
        var client = new CurationClient(channel);
        var request = new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = 1 };
        foreach (var size in new[] { 20_000, 100_000, 200_000 })
        {
            using var call = client.StreamBatches(request, SelectionHost.Auth(new string('k', size)));
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
            Assert.True(error.StatusCode == StatusCode.Unauthenticated, $"{size} bytes: {error.StatusCode}: {error.Status.Detail}");
        }
        using (var call = client.StreamBatches(request, new Metadata { { "authorization", "Basic " + SelectionHost.ApiKey } }))
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
            Assert.Contains("Bearer", error.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("scheme", error.Status.Detail, StringComparison.Ordinal);
        }
        // The connection survived all of that: the right key still works on it.
        using (var call = client.StreamBatches(request, SelectionHost.Auth()))
        {
            Assert.True(await call.ResponseStream.MoveNext().WaitAsync(ProtoClient.Deadline));
        }
    }
}
