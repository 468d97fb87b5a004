using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Core.Interceptors;
using JestMesh.Tls;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection;

/// <summary>
/// With Selection:Tls:CaFile set, every RPC except gRPC health must come over a TLS connection whose
/// client certificate chains to that CA (and allows client authentication); otherwise
/// UNAUTHENTICATED, saying what was presented and why it is refused. TLS itself accepts any client
/// certificate (or none), so that the refusal is a gRPC status a client can read rather than a failed
/// handshake, and the kubelet's HTTPS probes (which present none) still reach /health.
/// </summary>
public sealed class ClientCertificateInterceptor : Interceptor
{
    private const string HealthPrefix = "/grpc.health.v1.Health/";
    private readonly TlsOptions _tls;
    private readonly X509Certificate2Collection _roots;

    public ClientCertificateInterceptor(IOptions<SelectionOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _tls = options.Value.Tls;
        _roots = _tls.LoadCa();
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        if (context.Method.StartsWith(HealthPrefix, StringComparison.Ordinal))
        {
            return;
        }
        var connection = context.GetHttpContext().Connection;
        var problem = _tls.ClientCertificateProblem(connection.ClientCertificate, _roots, SelectionOptions.SectionName);
        if (problem is not null)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, problem + "."));
        }
    }
}
