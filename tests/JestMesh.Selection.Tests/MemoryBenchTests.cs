using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Grpc.Net.Client;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>
/// Memory over many dropped sessions (issue: Selection's RSS rose ~37 MB after 200 dropped sessions
/// and ~10 MB per later round). The service runs as its own process, as deployed; five rounds of
/// 200 clients that each connect, open a Curate session, get a candidate and drop the connection.
/// After each round the service's RSS (VmRSS). Writes JSON to $JESTMESH_BENCH_OUT (or the temp
/// directory; JESTMESH_BENCH_BASELINE=1 to measure an older service build) and asserts no timing: only that the service's RSS stays within 20 MB of round 1's.
/// </summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "EndToEnd")]
public sealed class MemoryBenchTests(SelectionFixture fixture)
{
    private const int Rounds = 5;
    private const int SessionsPerRound = 200;
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// "candidate": every client opens a session of the ingested job and drops after its first
    /// candidate. "unknown-job": every client names a job nobody ingests (a new name each time) and
    /// drops after the service answers (`opened` before the fix; NOT_FOUND after the short wait now).
    /// </summary>
    [Theory]
    [Trait("Category", "Bench")]
    [InlineData("candidate")]
    [InlineData("unknown-job")]
    public async Task Rounds_of_dropped_sessions_do_not_grow_the_service(string scenario)
    {
        var options = fixture.Broker.Options(TestNames.Unique("memory"));
        var settings = new Dictionary<string, string?> { ["Selection:ApiKey"] = SelectionHost.ApiKey };
        // JESTMESH_BENCH_BASELINE=1 runs a service build from before Selection:UnknownJobWait existed
        // (an unknown key stops the service at start), to compare with it.
        if (Environment.GetEnvironmentVariable("JESTMESH_BENCH_BASELINE") != "1")
        {
            settings["Selection:UnknownJobWait"] = "00:00:00.1";
        }
        using var service = ServiceProcess.Start("JestMesh.Selection", options, settings);
        try
        {
            var address = service.Address;
            // Ready once it declared the topology and read its batch log back.
            await service.WaitReadyAsync(TimeSpan.FromSeconds(90));
            await using var broker = new BrokerClient(options);
            await TestData.PublishAsync(fixture.Feeder, broker, "job", 4, 640);
            var rounds = new List<Dictionary<string, double>>();
            for (var round = 1; round <= Rounds; round++)
            {
                var started = Stopwatch.GetTimestamp();
                // Unknown jobs are refused only after the (short) wait: those clients come 20 at a time.
                var concurrency = scenario == "candidate" ? 1 : 20;
                for (var i = 0; i < SessionsPerRound; i += concurrency)
                {
                    await Task.WhenAll(Enumerable.Range(i, concurrency).Select(k => DropOneAsync(address, scenario, $"nobody-{round}-{k}")));
                }
                await Task.Delay(2000);
                rounds.Add(new Dictionary<string, double>
                {
                    ["round"] = round,
                    ["sessions"] = round * SessionsPerRound,
                    ["rss_mb"] = RssMegabytes(service.Id),
                    ["seconds"] = Stopwatch.GetElapsedTime(started).TotalSeconds,
                });
            }
            var json = JsonSerializer.Serialize(new { bench = "selection-dropped-sessions", scenario, sessions_per_round = SessionsPerRound, super_batch = 640, rounds }, Indented);
            var directory = Environment.GetEnvironmentVariable("JESTMESH_BENCH_OUT") is { Length: > 0 } dir ? dir : Path.GetTempPath();
            Directory.CreateDirectory(directory);
            await File.WriteAllTextAsync(Path.Combine(directory, $"selection-dropped-sessions-{scenario}.json"), json);
            var growth = rounds[^1]["rss_mb"] - rounds[0]["rss_mb"];
            Assert.True(growth < 20, $"the service's RSS grew {growth:F1} MB from round 1 to round {Rounds}:\n{json}");
        }
        finally
        {
            await service.KillAsync();
        }
    }

    /// <summary>One client of its own: opens a session, waits for the service's first answer, drops the connection.</summary>
    private static async Task DropOneAsync(string address, string scenario, string unknownJob)
    {
        using var channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions { MaxReceiveMessageSize = 64 * 1024 * 1024 });
        using var call = new CurationClient(channel).Curate(SelectionHost.Auth());
        if (scenario == "candidate")
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            while ((await ProtoClient.NextAsync(call))!.KindCase != CurateResponse.KindOneofCase.Candidate)
            {
            }
            return;
        }
        await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open(unknownJob, Policy.Learnability) });
        try
        {
            await ProtoClient.NextAsync(call);
        }
        catch (Grpc.Core.RpcException ex) when (ex.StatusCode == Grpc.Core.StatusCode.NotFound)
        {
            // Refused: the job does not exist.
        }
    }

    private static double RssMegabytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }
        throw new InvalidOperationException($"no VmRSS for process {pid}.");
    }
}
