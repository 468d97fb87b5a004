using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using JestMesh.Client;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using JestMesh.Tls;
using Microsoft.Extensions.Logging.Abstractions;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>
/// Selection on Kestrel over TLS with client certificates (Selection:Tls from an openssl-made PKI,
/// https://127.0.0.1 on a free port): callers are told UNAUTHENTICATED and why, health needs no certificate,
/// and a client that does not trust Selection's certificate stops naming its setting.
/// </summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class MutualTlsTests(SelectionFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private static async Task<SelectionHost> StartAsync(SelectionFixture fixture, TestPki pki) =>
        await SelectionHost.StartAsync(fixture.Broker.Options(TestNames.Unique("mtls")), kestrel: true, settings: new Dictionary<string, string?>
        {
            ["Selection:Tls:CertificateFile"] = pki.ServerCertificate,
            ["Selection:Tls:KeyFile"] = pki.ServerKey,
            ["Selection:Tls:CaFile"] = pki.CaFile,
            // An unknown job answers at once: NOT_FOUND is the status of a caller who got through.
            ["Selection:UnknownJobWait"] = "00:00:00",
        });

    private static GrpcChannel Channel(SelectionHost host, TlsOptions tls) =>
        CurateChannel.Create(host.Address, new SocketsHttpHandler(), tls: tls, section: "Test");

    private static async Task<RpcException> OpenAsync(GrpcChannel channel, string job)
    {
        using var call = new CurationClient(channel).Curate(SelectionHost.Auth());
        return await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open(job, Policy.Uniform) });
            while (await call.ResponseStream.MoveNext())
            {
            }
        }).Within(Deadline, "the Curate open to end");
    }

    [Fact]
    public async Task A_client_certificate_from_the_CA_gets_through_and_none_or_another_CAs_is_unauthenticated_saying_why()
    {
        using var pki = await TestPki.CreateAsync();
        await using var host = await StartAsync(fixture, pki);
        Assert.StartsWith("https://", host.Address, StringComparison.Ordinal);

        using (var good = Channel(host, pki.Client()))
        {
            var passed = await OpenAsync(good, "no-such-job");
            Assert.Equal(StatusCode.NotFound, passed.StatusCode);
        }

        using (var none = Channel(host, new TlsOptions { CaFile = pki.CaFile }))
        {
            var refused = await OpenAsync(none, "no-such-job");
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Equal("no client certificate: this service requires one issued by the CA in Selection:Tls:CaFile.", refused.Status.Detail);
        }

        var stranger = new TlsOptions { CaFile = pki.CaFile, CertificateFile = pki.OtherClientCertificate, KeyFile = pki.OtherClientKey };
        using (var other = Channel(host, stranger))
        {
            var refused = await OpenAsync(other, "no-such-job");
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Equal("the certificate 'CN=jestmesh-trainer' (issuer 'CN=Some Other CA') does not chain to this service's client CA (Selection:Tls:CaFile), which holds 'CN=JestMesh Test CA'.",
                refused.Status.Detail);
        }

        // The server's certificate used as a client certificate: right CA, wrong extended key usage.
        var serverAsClient = new TlsOptions { CaFile = pki.CaFile, CertificateFile = pki.ServerCertificate, KeyFile = pki.ServerKey };
        using (var misused = Channel(host, serverAsClient))
        {
            var refused = await OpenAsync(misused, "no-such-job");
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Contains("'CN=localhost' (issuer 'CN=JestMesh Test CA') is not valid for", refused.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Health_needs_no_client_certificate_and_the_api_key_is_still_required_with_one()
    {
        using var pki = await TestPki.CreateAsync();
        await using var host = await StartAsync(fixture, pki);

        using (var probe = Channel(host, new TlsOptions { CaFile = pki.CaFile }))
        {
            var health = await new Health.HealthClient(probe).CheckAsync(new HealthCheckRequest { Service = "readiness" }).ResponseAsync.Within(Deadline, "the health check");
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        }

        using var good = Channel(host, pki.Client());
        using var call = new CurationClient(good).Curate(SelectionHost.Auth("wrong-key-but-long-enough-0000"));
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("no-such-job", Policy.Uniform) });
            while (await call.ResponseStream.MoveNext())
            {
            }
        }).Within(Deadline, "the Curate open to end");
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        Assert.Equal("the api key in 'authorization' is wrong.", refused.Status.Detail);
    }

    [Fact]
    public async Task A_client_trusting_another_CA_stops_at_once_naming_its_CaFile_setting_instead_of_reconnecting()
    {
        using var pki = await TestPki.CreateAsync();
        await using var host = await StartAsync(fixture, pki);
        var wrongTrust = new TlsOptions { CaFile = pki.OtherCaFile, CertificateFile = pki.ClientCertificate, KeyFile = pki.ClientKey };
        using var channel = CurateChannel.Create(host.Address, new SocketsHttpHandler(), tls: wrongTrust, section: "Trainer");
        var session = new CurateSession(channel, new CurateSettings { Job = "no-such-job", ApiKey = SelectionHost.ApiKey, Policy = Policy.Uniform,
            ReconnectDelay = TimeSpan.FromMilliseconds(10), ReconnectMaxDelay = TimeSpan.FromMilliseconds(20) }, NullLogger.Instance);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => session.RunAsync(new NoLearner(), CancellationToken.None)).Within(Deadline, "the session to give up");

        var untrusted = UntrustedPeerException.Find(error is RpcException rpc ? rpc.Status.DebugException : error);
        Assert.NotNull(untrusted);
        Assert.Equal(0, session.Stats.Reconnects);
        Assert.Equal($"TLS to '127.0.0.1' refused: the certificate 'CN=localhost' (issuer 'CN=JestMesh Test CA') does not chain to Trainer:Tls:CaFile ('{pki.OtherCaFile}'), which holds 'CN=Some Other CA'.",
            untrusted.Message);
    }

    private sealed class NoLearner : ICurateLearner
    {
        public long Remaining => 1;

        public void SessionOpened(string sessionId)
        {
        }

        public LearnerScores Score(Candidate candidate) => throw new InvalidOperationException("never reached");

        public void Train(CuratedBatch batch) => throw new InvalidOperationException("never reached");
    }
}
