using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
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
public sealed class ClientCertificateInterceptor : CallGate
{
    private readonly TlsOptions _tls;
    private readonly X509Certificate2Collection _roots;

    public ClientCertificateInterceptor(IOptions<SelectionOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _tls = options.Value.Tls;
        _roots = _tls.LoadCa();
    }

    protected override void Check(ServerCallContext context)
    {
        var connection = context.GetHttpContext().Connection;
        var problem = _tls.ClientCertificateProblem(connection.ClientCertificate, _roots, SelectionOptions.SectionName);
        if (problem is not null)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, problem + "."));
        }
    }
}
