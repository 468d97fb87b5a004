using JestMesh.Tls;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace JestMesh.Messaging;

/// <summary>
/// The broker connections of a service: one for publishing, one for consuming, so that a
/// publisher blocked by broker flow control never stalls deliveries and acks. Both recover
/// automatically (connection, channels, topology, consumers) after the broker comes back. A third,
/// opened only by services that hold something exclusively (<see cref="HoldingConnectionAsync"/>), does not.
/// </summary>
public sealed partial class BrokerConnections : IAsyncDisposable
{
    private readonly MessagingOptions _options;
    private readonly ILogger<BrokerConnections> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IConnection? _publish;
    private IConnection? _consume;
    private IConnection? _holding;
    private bool _disposed;
    private long _disruptions;

    public BrokerConnections(IOptions<MessagingOptions> options, ILogger<BrokerConnections> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _logger = logger;
        Topology = QueueTopology.From(_options);
    }

    public MessagingOptions Options => _options;

    public QueueTopology Topology { get; }

    /// <summary>
    /// How many times a connection of this service was lost so far (not closed by the service): a
    /// caller that saw it change while it waited cannot trust a "does not exist" it got meanwhile.
    /// </summary>
    public long Disruptions => Interlocked.Read(ref _disruptions);

    /// <summary>True when every connection opened so far is currently open (readiness).</summary>
    public bool IsHealthy => (_publish?.IsOpen ?? true) && (_consume?.IsOpen ?? true);

    public Task<IConnection> PublishConnectionAsync(CancellationToken cancellationToken) =>
        GetAsync(publish: true, cancellationToken);

    public Task<IConnection> ConsumeConnectionAsync(CancellationToken cancellationToken) =>
        GetAsync(publish: false, cancellationToken);

    /// <summary>
    /// A connection that is never recovered: what it holds (exclusive queues used as locks, and the
    /// consumers they guard) ends with it, and the broker gives it to another client at once. Its
    /// holder sees the loss (channel shutdown) and must take it again on a new connection, which the
    /// next call opens (to any node that answers).
    /// </summary>
    public async Task<IConnection> HoldingConnectionAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_holding is { IsOpen: true } open)
        {
            return open;
        }
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_holding is { IsOpen: true } again)
            {
                return again;
            }
            if (_holding is not null)
            {
                await _holding.DisposeAsync();
            }
            _holding = await ConnectWithRetryAsync("holding", cancellationToken, recover: false);
            return _holding;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Declares the topology over the publish connection (idempotent).</summary>
    public async Task DeclareTopologyAsync(CancellationToken cancellationToken)
    {
        var connection = await PublishConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await Topology.DeclareAsync(channel, _options, cancellationToken);
    }

    /// <summary>Messages ready in <paramref name="queue"/> (unacked ones not counted).</summary>
    public async Task<uint> ReadyCountAsync(string queue, CancellationToken cancellationToken) =>
        await TryReadyCountAsync(queue, cancellationToken) ?? throw new InvalidOperationException($"queue {queue} does not exist.");

    /// <summary>Messages ready in <paramref name="queue"/> (unacked ones not counted), or null while it does not exist.</summary>
    public async Task<uint?> TryReadyCountAsync(string queue, CancellationToken cancellationToken)
    {
        var connection = await PublishConnectionAsync(cancellationToken);
        // A passive declare of a missing queue closes its channel: a throwaway one.
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
            return ok.MessageCount;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            return null;
        }
        finally
        {
            // Closed by the broker after a 404, the channel must still be closed here, or the
            // connection keeps it recorded for recovery (~8 KB per probe, for ever).
            try
            {
                await channel.CloseAsync(CancellationToken.None);
            }
            catch (Exception ex) when (ex is AlreadyClosedException or OperationInterruptedException or IOException)
            {
                // Closed already.
            }
            await channel.DisposeAsync();
        }
    }

    private async Task<IConnection> GetAsync(bool publish, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var existing = publish ? _publish : _consume;
        if (existing is not null)
        {
            return existing;
        }
        await _gate.WaitAsync(cancellationToken);
        try
        {
            existing = publish ? _publish : _consume;
            if (existing is not null)
            {
                return existing;
            }
            var connection = await ConnectWithRetryAsync(publish ? "publish" : "consume", cancellationToken);
            if (publish)
            {
                _publish = connection;
            }
            else
            {
                _consume = connection;
            }
            return connection;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<IConnection> ConnectWithRetryAsync(string role, CancellationToken cancellationToken, bool recover = true)
    {
        var address = BrokerAddress.Parse(_options.Uri);
        var factory = new ConnectionFactory
        {
            Uri = address.Primary,
            AutomaticRecoveryEnabled = recover,
            TopologyRecoveryEnabled = recover,
            NetworkRecoveryInterval = _options.RecoveryInterval,
            RequestedHeartbeat = TimeSpan.FromSeconds(30),
            MaxInboundMessageBodySize = (uint)_options.MaxMessageBytes,
            ClientProvidedName = $"{_options.ClientName}-{role}",
        };
        // amqps:// (the URI turned TLS on): the broker's certificate must chain to Messaging:Tls:CaFile
        // (else the system CAs) and name the host; a client certificate when one is configured. A
        // connection made from an endpoint list uses each endpoint's own TLS options, not the factory's.
        var certificate = address.Primary.Scheme == "amqps" ? _options.Tls.LoadCertificate() : null;
        foreach (var ssl in address.Endpoints.Select(e => e.Ssl).Append(factory.Ssl).Where(o => o.Enabled))
        {
            ssl.CertificateValidationCallback = _options.Tls.ServerCertificateValidation(MessagingOptions.SectionName);
            if (certificate is not null)
            {
                ssl.Certs = new System.Security.Cryptography.X509Certificates.X509CertificateCollection { certificate };
                ssl.CertificateSelectionCallback = (_, _, _, _, _) => certificate;
            }
        }
        // Automatic recovery only covers connections that were once open: the first connect is
        // retried here, so a service may start before its broker.
        while (true)
        {
            try
            {
                // The endpoint list serves the first connect and every recovery: a lost node is
                // replaced by any other node of the cluster.
                var connection = await factory.CreateConnectionAsync(address.Endpoints, cancellationToken);
                connection.ConnectionShutdownAsync += (_, args) =>
                {
                    if (args.Initiator != ShutdownInitiator.Application)
                    {
                        Interlocked.Increment(ref _disruptions);
                        LogConnectionLost(_logger, role, args.ReplyText);
                    }
                    return Task.CompletedTask;
                };
                connection.RecoverySucceededAsync += (_, _) =>
                {
                    LogConnectionRecovered(_logger, role, connection.Endpoint.HostName, connection.Endpoint.Port);
                    return Task.CompletedTask;
                };
                LogConnected(_logger, role, connection.Endpoint.HostName, connection.Endpoint.Port);
                return connection;
            }
            catch (BrokerUnreachableException ex) when (UntrustedPeerException.Find(ex) is { } untrusted)
            {
                // A certificate the settings do not trust does not fix itself: stop, saying why.
                LogUntrusted(_logger, role, untrusted.Message);
                throw new UntrustedPeerException($"Broker {role} connection to {factory.HostName}:{factory.Port}: {untrusted.Message}", ex);
            }
            catch (BrokerUnreachableException ex)
            {
                LogConnectRetry(_logger, role, ex.Message);
                await Task.Delay(_options.RecoveryInterval, cancellationToken);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var connection in new[] { _holding, _consume, _publish })
        {
            if (connection is null)
            {
                continue;
            }
            try
            {
                await connection.CloseAsync();
            }
            catch (AlreadyClosedException)
            {
                // Closing a connection the broker already dropped is fine.
            }
            await connection.DisposeAsync();
        }
        _gate.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Broker {Role} connection open to {Host}:{Port}")]
    private static partial void LogConnected(ILogger logger, string role, string host, int port);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broker {Role} connection failed ({Reason}); retrying")]
    private static partial void LogConnectRetry(ILogger logger, string role, string reason);

    [LoggerMessage(Level = LogLevel.Critical, Message = "Broker {Role} connection refused the broker's certificate: {Reason}")]
    private static partial void LogUntrusted(ILogger logger, string role, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broker {Role} connection lost: {Reason}")]
    private static partial void LogConnectionLost(ILogger logger, string role, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Broker {Role} connection recovered to {Host}:{Port}")]
    private static partial void LogConnectionRecovered(ILogger logger, string role, string host, int port);
}
