using Grpc.Core;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>Real Kestrel on loopback: message size limits, HTTP/2 flow control with a slow client, keepalive.</summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class TransportTests(SelectionFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Scores_over_the_server_receive_limit_are_resource_exhausted()
    {
        var prefix = TestNames.Unique("limit-server");
        var options = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(options, kestrel: true,
            settings: new Dictionary<string, string?> { ["Selection:MaxReceiveMessageBytes"] = "65536" });
        await using var broker = new BrokerClient(options);
        const int n = 256;
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 1, n);
        using var channel = host.Channel();
        using var call = new CurationClient(channel).Curate(SelectionHost.Auth());
        await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
        Candidate? candidate = null;
        while (candidate is null && await call.ResponseStream.MoveNext())
        {
            candidate = call.ResponseStream.Current.Candidate;
        }
        // 256 × 64 floats × 2 towers = 128 KiB of scores, over the 64 KiB the server accepts.
        var scores = new LearnerScores
        {
            SuperBatchId = candidate!.SuperBatchId,
            ImageEmbeddings = Protos.V1.Tensor.FromFloat32(new float[n * 64], n, 64),
            TextEmbeddings = Protos.V1.Tensor.FromFloat32(new float[n * 64], n, 64),
        };
        // The server may end the call while the client is still sending; the write then fails with
        // a reset, and the call's own status comes with the response stream.
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            try
            {
                await call.RequestStream.WriteAsync(new CurateRequest { Scores = scores });
            }
            catch (RpcException)
            {
                // Read the status below.
            }
            while (await call.ResponseStream.MoveNext())
            {
            }
        });
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }

    [Fact]
    public async Task Candidate_over_the_client_receive_limit_is_resource_exhausted_at_the_client()
    {
        var prefix = TestNames.Unique("limit-client");
        var options = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(options, kestrel: true);
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 1, 256);
        using var channel = host.Channel(maxMessageBytes: 64 * 1024);
        using var call = new CurationClient(channel).Curate(SelectionHost.Auth());
        await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
        var kinds = new List<CurateResponse.KindOneofCase>();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
                kinds.Add(call.ResponseStream.Current.KindCase);
            }
        });
        Assert.True(error.StatusCode == StatusCode.ResourceExhausted, $"{error.StatusCode}: {error.Status.Detail}");
        Assert.Equal([CurateResponse.KindOneofCase.Opened], kinds);
    }

    [Fact]
    public async Task Slow_client_stops_the_service_through_flow_control_and_loses_nothing()
    {
        var prefix = TestNames.Unique("slow");
        var options = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(options, kestrel: true,
            settings: new Dictionary<string, string?> { ["Selection:JobPrefetch"] = "4" });
        await using var broker = new BrokerClient(options);
        const int count = 40;
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", count, 64);
        using var channel = host.Channel();
        using var call = new CurationClient(channel).StreamBatches(
            new StreamBatchesRequest { Session = Sessions.Open("job", Policy.Uniform), MaxBatches = count }, SelectionHost.Auth());
        Assert.True(await call.ResponseStream.MoveNext());
        var first = call.ResponseStream.Current;
        Assert.True(host.Store.TryGet(first.SessionId, out var session));

        // The client reads nothing more: the server must come to a stop well before the end.
        long last = -1;
        var unchangedSince = DateTime.UtcNow;
        await Eventually.WaitUntilAsync(() =>
        {
            var now = session.LastSequence;
            if (now != last)
            {
                last = now;
                unchangedSince = DateTime.UtcNow;
            }
            return DateTime.UtcNow - unchangedSince > TimeSpan.FromSeconds(1.5);
        }, Deadline, "the service to stop sending to a client that does not read");
        // The broker first, then the session: the service takes super-batches from the broker before
        // it sends their batches, so read in this order the bound holds even if the service were
        // still creeping forward (a loaded machine can pause it for 1.5 s without flow control).
        var waiting = await broker.Connections.ReadyCountAsync(((JobFeeds)host.Services.GetService(typeof(JobFeeds))!).QueueOf("job"), CancellationToken.None);
        var sent = session.LastSequence;
        Assert.InRange(sent, 1, count / 2);
        Assert.True(waiting >= count - sent - 4, $"{waiting} super-batches still in the broker after {sent} batches");

        var received = new List<CuratedBatch> { first };
        while (await call.ResponseStream.MoveNext().WaitAsync(Deadline))
        {
            received.Add(call.ResponseStream.Current);
        }
        Assert.Equal(Enumerable.Range(1, count).Select(i => (long)i), received.Select(b => b.Sequence));
        Assert.Equal(published.Select(p => p.Id).Order(), received.Select(b => b.SuperBatchId).Order());
    }

    [Fact]
    public async Task Keepalive_detects_a_silent_peer_on_both_ends()
    {
        var prefix = TestNames.Unique("keepalive");
        var options = fixture.Broker.Options(prefix);
        await using var host = await SelectionHost.StartAsync(options, kestrel: true, settings: new Dictionary<string, string?>
        {
            ["Selection:KeepAlivePingDelay"] = "00:00:01",
            ["Selection:KeepAlivePingTimeout"] = "00:00:01",
        });
        // Only a job whose super-batches arrived exists (and gets `opened`); this one has one.
        await using (var broker = new BrokerClient(options))
        {
            await TestData.PublishAsync(fixture.Feeder, broker, "quiet", 1, 64);
        }
        await using var proxy = new BlackholeProxy(host.Port!.Value);
        using var handler = new SocketsHttpHandler
        {
            KeepAlivePingDelay = TimeSpan.FromSeconds(1),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(1),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
        };
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{proxy.Port}", new Grpc.Net.Client.GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = false });
        // No more data for this job: the stream just waits, as a trainer waits for a slow pipeline.
        using var call = new CurationClient(channel).Curate(SelectionHost.Auth());
        await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("quiet", Policy.Learnability) });
        Assert.True(await call.ResponseStream.MoveNext());
        var sessionId = call.ResponseStream.Current.Opened.SessionId;
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(CurateResponse.KindOneofCase.Candidate, call.ResponseStream.Current.KindCase);
        Assert.True(host.Store.TryGet(sessionId, out var session));
        var next = call.ResponseStream.MoveNext();
        Assert.False(next.IsCompleted, "the idle stream ended while the peer was alive");

        // Without keepalive neither end could tell a silent peer from an idle one: this would hang.
        proxy.GoSilent();
        var error = await Assert.ThrowsAsync<RpcException>(() => next.WaitAsync(Deadline));
        Assert.Contains(error.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal, StatusCode.Cancelled });
        // The server noticed too: the session is free for the client's next connection.
        await Eventually.WaitUntilAsync(() => session.Gate.CurrentCount == 1, Deadline, "the server to release the session of the dead connection");
    }
}
