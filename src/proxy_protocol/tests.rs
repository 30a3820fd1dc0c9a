use super::*;

fn addrs(source: &str, destination: &str) -> Option<Addresses> {
    Some(Addresses {
        source: source.parse().unwrap(),
        destination: destination.parse().unwrap(),
    })
}

fn done(version: Version, addresses: Option<Addresses>, consumed: usize) -> Result<Parsed, HeaderError> {
    Ok(Parsed::Done {
        header: ProxyHeader { version, addresses },
        consumed,
    })
}

const FFFF6: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

/// The specification's examples and limits, then what must be refused.
#[test]
fn v1_rows() {
    let longest_unknown = format!("PROXY UNKNOWN {FFFF6} {FFFF6} 65535 65535\r\n");
    assert_eq!(longest_unknown.len(), V1_MAX_HEADER);
    let longest_tcp6 = format!("PROXY TCP6 {FFFF6} {FFFF6} 65535 65535\r\n");
    let rows: Vec<(&[u8], Result<Parsed, HeaderError>)> = vec![
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            done(Version::V1, addrs("192.168.0.1:56324", "192.168.0.11:443"), 47),
        ),
        (
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nA1 LOGIN",
            done(Version::V1, addrs("255.255.255.255:65535", "255.255.255.255:65535"), 56),
        ),
        (
            longest_tcp6.as_bytes(),
            done(
                Version::V1,
                addrs(&format!("[{FFFF6}]:65535"), &format!("[{FFFF6}]:65535")),
                104,
            ),
        ),
        (
            b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n",
            done(Version::V1, addrs("[2001:db8::1]:1", "[::1]:2"), 32),
        ),
        (b"PROXY UNKNOWN\r\n", done(Version::V1, None, 15)),
        (longest_unknown.as_bytes(), done(Version::V1, None, 107)),
        (b"PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n", done(Version::V1, None, 15)),
        (b"", Ok(Parsed::Incomplete)),
        (b"P", Ok(Parsed::Incomplete)),
        (b"PROXY", Ok(Parsed::Incomplete)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", Ok(Parsed::Incomplete)),
        (b"A1 LOGIN a b\r\n", Err(HeaderError::NotProxy)),
        (b"proxy TCP4", Err(HeaderError::NotProxy)),
        (b"PROXYTCP4", Err(HeaderError::NotProxy)),
        (b"\x16\x03\x01\x02\x00", Err(HeaderError::NotProxy)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 ::1 ::1 1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY UNKNOWNX\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY \r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", Err(HeaderError::V1Malformed)),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\xff\r\n", Err(HeaderError::V1Malformed)),
    ];
    for (input, want) in rows {
        assert_eq!(parse(input, MAX_HEADER), want, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn v1_without_end_is_refused_at_its_limit() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_HEADER - 1, b'x');
    assert_eq!(parse(&line, MAX_HEADER), Ok(Parsed::Incomplete));
    line.push(b'x');
    assert_eq!(parse(&line, MAX_HEADER), Err(HeaderError::V1TooLong));
    // An LF past the limit does not make it a header.
    line.extend_from_slice(b"\r\n");
    assert_eq!(parse(&line, MAX_HEADER), Err(HeaderError::V1TooLong));
}

/// The specification's v2 layout, written out byte by byte.
fn v2_inet(command: u8, tail: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(0x11);
    h.extend_from_slice(&u16::try_from(12 + tail.len()).unwrap().to_be_bytes());
    h.extend_from_slice(&[192, 0, 2, 7, 198, 51, 100, 1, 0xc3, 0x50, 0x00, 0x8f]);
    h.extend_from_slice(tail);
    h
}

#[test]
fn v2_rows() {
    let inet = v2_inet(1, &[]);
    assert_eq!(inet.len(), 28);
    let with_tlvs = v2_inet(1, &[0x01, 0x00, 0x04, b'i', b'm', b'a', b'p', 0x04, 0x00, 0x00]);
    let mut inet6 = V2_SIGNATURE.to_vec();
    inet6.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
    inet6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    inet6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    inet6.extend_from_slice(&[0x04, 0xd2, 0x00, 0x8f]);
    let mut unix = V2_SIGNATURE.to_vec();
    unix.extend_from_slice(&[0x21, 0x31, 0x00, 216]);
    unix.resize(16 + 216, b'/');
    let local = {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        h
    };
    let unspec = {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
        h
    };
    let mut short = V2_SIGNATURE.to_vec();
    short.extend_from_slice(&[0x21, 0x11, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
    let mut short6 = V2_SIGNATURE.to_vec();
    short6.extend_from_slice(&[0x21, 0x21, 0x00, 12]);
    short6.resize(16 + 12, 1);
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    let with_data = [inet.as_slice(), b"\x16\x03\x01"].concat();
    let local_with_addresses = v2_inet(0, &[]);
    let gave = addrs("192.0.2.7:50000", "198.51.100.1:143");
    let rows: Vec<(&[u8], Result<Parsed, HeaderError>)> = vec![
        (&inet, done(Version::V2, gave, 28)),
        (&with_data, done(Version::V2, gave, 28)),
        (&with_tlvs, done(Version::V2, gave, 38)),
        (&inet6, done(Version::V2, addrs("[2001:db8::7]:1234", "[::1]:143"), 52)),
        (&unix, done(Version::V2, None, 232)),
        (&local, done(Version::V2, None, 16)),
        // LOCAL with addresses: they are to be ignored.
        (&local_with_addresses, done(Version::V2, None, 28)),
        (&unspec, done(Version::V2, None, 16)),
        (&inet[..1], Ok(Parsed::Incomplete)),
        (&inet[..12], Ok(Parsed::Incomplete)),
        (&inet[..15], Ok(Parsed::Incomplete)),
        (&inet[..27], Ok(Parsed::Incomplete)),
        (b"\r\n\r\n\0\r\nQUIX\n", Err(HeaderError::NotProxy)),
        (b"\r\nA1 LOGIN", Err(HeaderError::NotProxy)),
        (&short, Err(HeaderError::V2ShortAddresses)),
        (&short6, Err(HeaderError::V2ShortAddresses)),
        (
            &huge,
            Err(HeaderError::TooLarge {
                len: 16 + 65535,
                limit: MAX_HEADER,
            }),
        ),
    ];
    for (input, want) in rows {
        assert_eq!(parse(input, MAX_HEADER), want, "{input:02x?}");
    }
    let mut bad = inet.clone();
    bad[12] = 0x11;
    assert_eq!(parse(&bad, MAX_HEADER), Err(HeaderError::V2Version(1)));
    bad[12] = 0x22;
    assert_eq!(parse(&bad, MAX_HEADER), Err(HeaderError::V2Command(2)));
    bad[12] = 0x21;
    bad[13] = 0x41;
    assert_eq!(parse(&bad, MAX_HEADER), Err(HeaderError::V2Family(0x41)));
    bad[13] = 0x13;
    assert_eq!(parse(&bad, MAX_HEADER), Err(HeaderError::V2Family(0x13)));
    // The limit counts the whole header.
    assert_eq!(parse(&with_tlvs, 38), done(Version::V2, gave, 38));
    assert_eq!(parse(&with_tlvs, 37), Err(HeaderError::TooLarge { len: 38, limit: 37 }));
}

/// A header cut anywhere is `Incomplete` until its last byte, then the
/// same header, whatever follows.
#[test]
fn every_split_point() {
    let headers: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v1(addrs("[2001:db8::7]:1234", "[::1]:143")),
        v2_inet(1, &[0x04, 0x00, 0x02, 0, 0]),
        v2(addrs("[2001:db8::7]:1234", "[::1]:143")),
        v2(None),
    ];
    for header in headers {
        let whole = parse(&header, MAX_HEADER);
        let Ok(Parsed::Done { consumed, .. }) = whole else {
            panic!("{header:02x?}: {whole:?}");
        };
        assert_eq!(consumed, header.len());
        for cut in 0..header.len() {
            assert_eq!(
                parse(&header[..cut], MAX_HEADER),
                Ok(Parsed::Incomplete),
                "{header:02x?} at {cut}"
            );
        }
        let mut more = header.clone();
        more.extend_from_slice(b"* OK\r\n\x16\x03");
        assert_eq!(parse(&more, MAX_HEADER), whole);
    }
}

#[test]
fn built_headers() {
    let rows: Vec<(Option<Addresses>, &[u8])> = vec![
        (
            addrs("192.0.2.7:50000", "198.51.100.1:143"),
            b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 143\r\n",
        ),
        (
            addrs("[2001:db8::7]:1234", "[::1]:143"),
            b"PROXY TCP6 2001:db8::7 ::1 1234 143\r\n",
        ),
        // Mixed families: the IPv4 side is mapped.
        (
            addrs("192.0.2.7:1", "[::1]:143"),
            b"PROXY TCP6 ::ffff:192.0.2.7 ::1 1 143\r\n",
        ),
        // Both mapped (an ipv6only=off listener): plain IPv4.
        (
            addrs("[::ffff:192.0.2.7]:1", "[::ffff:127.0.0.1]:143"),
            b"PROXY TCP4 192.0.2.7 127.0.0.1 1 143\r\n",
        ),
        (None, b"PROXY UNKNOWN\r\n"),
    ];
    for (addresses, want) in rows {
        assert_eq!(v1(addresses), want, "{addresses:?}");
    }
    assert_eq!(
        v2(addrs("192.0.2.7:50000", "198.51.100.1:143")),
        [
            &V2_SIGNATURE[..],
            &[0x21, 0x11, 0, 12, 192, 0, 2, 7, 198, 51, 100, 1, 0xc3, 0x50, 0, 143]
        ]
        .concat()
    );
    assert_eq!(v2(None), [&V2_SIGNATURE[..], &[0x21, 0x00, 0, 0]].concat());
    let six = v2(addrs("192.0.2.7:1", "[::1]:143"));
    assert_eq!(&six[12..16], &[0x21, 0x21, 0, 36]);
    assert_eq!(six.len(), 52);
}

/// What is built reads back as the same addresses (one family each).
#[test]
fn built_headers_parse_back() {
    for a in [
        addrs("192.0.2.7:50000", "198.51.100.1:143"),
        addrs("[2001:db8::7]:1234", "[::1]:65535"),
        addrs("0.0.0.0:0", "255.255.255.255:65535"),
    ] {
        for (version, built) in [(Version::V1, v1(a)), (Version::V2, v2(a))] {
            assert_eq!(parse(&built, MAX_HEADER), done(version, a, built.len()));
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn socket_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// No input panics, and a header taken is never longer than its limit
        /// nor than the input.
        #[test]
        fn any_bytes(input in proptest::collection::vec(any::<u8>(), 0..300), limit in 0usize..5000) {
            if let Ok(Parsed::Done { consumed, header }) = parse(&input, limit) {
                prop_assert!(consumed <= input.len());
                match header.version {
                    Version::V1 => prop_assert!(consumed <= V1_MAX_HEADER),
                    Version::V2 => prop_assert!(consumed <= limit),
                }
            }
        }

        /// Inputs that start as a header and then go wrong.
        #[test]
        fn mutated_headers(a in socket_addr(), b in socket_addr(), v2_form in any::<bool>(),
                           at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let addresses = Some(Addresses { source: a, destination: b });
            let mut h = if v2_form { v2(addresses) } else { v1(addresses) };
            let i = at.index(h.len());
            h[i] = byte;
            let n = cut.index(h.len() + 1);
            let _ = parse(&h[..n], MAX_HEADER);
        }

        /// Any addresses survive a round trip, v1 and v2.
        #[test]
        fn round_trip(a in socket_addr(), b in socket_addr()) {
            let want = one_family(Addresses { source: a, destination: b });
            for built in [v1(Some(Addresses { source: a, destination: b })), v2(Some(Addresses { source: a, destination: b }))] {
                match parse(&built, MAX_HEADER) {
                    Ok(Parsed::Done { header, consumed }) => {
                        prop_assert_eq!(consumed, built.len());
                        prop_assert_eq!(header.addresses, Some(want));
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }
}
