using System.Collections.Concurrent;
using System.Text;
using JestMesh.ServiceDefaults;
using JestMesh.TestKit;
using JestMesh.Tls;

namespace JestMesh.Messaging.Tests;

/// <summary>
/// A private RabbitMQ (Debian's rabbitmq-server, started by scripts/broker.sh) with an AMQPS listener on
/// loopback, its certificates made with openssl for this run: the messaging clients over amqps://.
/// </summary>
#pragma warning disable CA1001 // xUnit disposes the fixture through IAsyncLifetime.
public sealed class AmqpsBroker : IAsyncLifetime
#pragma warning restore CA1001
{
    public TestPki Pki { get; private set; } = null!;

    public TestBroker Broker { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Pki = await TestPki.CreateAsync();
        Broker = await TestBroker.StartPrivateAsync(portOffset: 14, Pki);
    }

    public async Task DisposeAsync()
    {
        if (Broker is not null)
        {
            await Broker.DisposeAsync();
        }
        Pki?.Dispose();
    }
}

[Trait("Tier", "Broker")]
public sealed class AmqpsTests(AmqpsBroker amqps) : IClassFixture<AmqpsBroker>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private MessagingOptions Options(string name, TlsOptions tls)
    {
        var options = amqps.Broker.Options(TestNames.Unique(name));
        options.Uri = amqps.Broker.TlsUri();
        options.Tls = tls;
        return options;
    }

    [Fact]
    public async Task Amqps_with_the_CA_delivers_and_the_broker_sees_the_client_certificate()
    {
        var options = Options("amqps", amqps.Pki.Client());
        Assert.Empty(ValidatedOptions.Validate(options, MessagingOptions.SectionName));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None).Within(Deadline, "the topology over amqps://");
        var received = new ConcurrentBag<string>();
        var consumer = client.NewConsumer();
        await consumer.StartAsync(client.Topology.SuperBatches, (message, _) =>
        {
            received.Add(Encoding.UTF8.GetString(message.Body.Span));
            return Task.CompletedTask;
        }, CancellationToken.None);
        await client.Publisher.PublishAsync(OutgoingMessage.ToQueue(client.Topology.SuperBatches, "m1", Encoding.UTF8.GetBytes("over TLS")), CancellationToken.None)
            .Within(Deadline, "the confirmed publish");
        await Eventually.WaitUntilAsync(() => received.Count == 1, Deadline, "the message through the consumer");
        Assert.Equal("over TLS", Assert.Single(received));

        // Both connections (publish, consume) are TLS, and each presented the client certificate.
        var connections = (await amqps.Broker.ConnectionsAsync("ssl", "peer_cert_subject", "peer_cert_issuer", "client_properties"))
            .Where(c => c[3].Contains($"\"{options.ClientName}-", StringComparison.Ordinal))
            .ToList();
        Assert.Equal(2, connections.Count);
        Assert.Contains(connections, c => c[3].Contains($"\"{options.ClientName}-publish\"", StringComparison.Ordinal));
        Assert.Contains(connections, c => c[3].Contains($"\"{options.ClientName}-consume\"", StringComparison.Ordinal));
        Assert.All(connections, c =>
        {
            Assert.Equal("true", c[0]);
            Assert.Equal("CN=jestmesh-trainer", c[1]);
            Assert.Equal("CN=JestMesh Test CA", c[2]);
        });
    }

    [Fact]
    public async Task Amqps_with_another_CA_stops_at_the_first_connect_naming_Messaging_Tls_CaFile()
    {
        var options = Options("amqps-wrong-ca", new TlsOptions { CaFile = amqps.Pki.OtherCaFile });
        await using var client = new BrokerClient(options);
        var error = await Assert.ThrowsAsync<UntrustedPeerException>(() => client.Connections.DeclareTopologyAsync(CancellationToken.None))
            .Within(Deadline, "the connect to be refused");
        Assert.Equal($"Broker publish connection to localhost:{amqps.Broker.TlsPort}: TLS to 'localhost' refused: the certificate 'CN=localhost' (issuer 'CN=JestMesh Test CA') "
            + $"does not chain to Messaging:Tls:CaFile ('{amqps.Pki.OtherCaFile}'), which holds 'CN=Some Other CA'.", error.Message);
    }

    [Fact]
    public async Task Amqps_without_a_CA_setting_refuses_a_private_CA_and_says_which_setting_fixes_it()
    {
        var options = Options("amqps-system", new TlsOptions());
        await using var client = new BrokerClient(options);
        var error = await Assert.ThrowsAsync<UntrustedPeerException>(() => client.Connections.DeclareTopologyAsync(CancellationToken.None))
            .Within(Deadline, "the connect to be refused");
        Assert.Contains("is not trusted by the system CAs", error.Message, StringComparison.Ordinal);
        Assert.Contains("set Messaging:Tls:CaFile to the CA that issued it", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>Messaging's TLS settings are checked with the rest of its options, each failure naming its key.</summary>
[Trait("Tier", "Unit")]
public sealed class MessagingTlsSettingsTests
{
    [Fact]
    public void Tls_settings_with_amqp_and_missing_files_are_named()
    {
        var options = new MessagingOptions
        {
            Uri = "amqp://guest:guest@127.0.0.1:5672/",
            Tls = new TlsOptions { CaFile = "/nonexistent/ca.crt", KeyFile = "/nonexistent/client.key" },
        };
        var failures = ValidatedOptions.Validate(options, MessagingOptions.SectionName);
        Assert.Contains("Messaging:Uri: is amqp:// (no TLS) but Messaging:Tls is set: use amqps://host:5671/, or drop the Tls settings.", failures);
        Assert.Contains("Messaging:Tls:CaFile: '/nonexistent/ca.crt' does not exist.", failures);
        Assert.Contains("Messaging:Tls:CertificateFile: must name the PEM certificate of KeyFile.", failures);
    }

    [Fact]
    public void Amqps_without_tls_settings_is_valid_it_trusts_the_system_CAs()
    {
        Assert.Empty(ValidatedOptions.Validate(new MessagingOptions { Uri = "amqps://u:p@broker:5671/" }, MessagingOptions.SectionName));
    }
}
