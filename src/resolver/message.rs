//! DNS queries and the reading of their answers, built and parsed with
//! hickory-proto; no sockets here. `read_reply` sorts an answer into what
//! the lookup does next, with nginx's resolver as the rule for each case.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// One question: the host name of an address (PTR), or the addresses of a
/// name (A or AAAA).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Question {
    Ptr(IpAddr),
    /// The name as the PTR answer gave it, and the type asked for.
    Addrs(Name, AddrType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    A,
    Aaaa,
}

impl Question {
    /// The name and type on the wire: PTR questions use the reverse name
    /// (`1.0.0.127.in-addr.arpa.`, nibbles under `ip6.arpa.`).
    fn wire(&self) -> (Name, RecordType) {
        match self {
            Question::Ptr(ip) => (Name::from(*ip), RecordType::PTR),
            Question::Addrs(name, AddrType::A) => (name.clone(), RecordType::A),
            Question::Addrs(name, AddrType::Aaaa) => (name.clone(), RecordType::AAAA),
        }
    }
}

/// The query's bytes: one question, recursion desired, the caller's id
/// (random, so an off-path attacker must guess it with the source port).
pub fn query(id: u16, question: &Question) -> Result<Vec<u8>, String> {
    let (name, rtype) = question.wire();
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, rtype));
    message.to_vec().map_err(|e| format!("cannot build DNS query: {e}"))
}

/// What an answer means for the lookup waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Not the answer to this query, or one nginx would not use (a wrong id
    /// or question, a malformed message, FORMERR, an answer section with no
    /// PTR): the lookup keeps waiting, and times out if nothing better
    /// comes.
    Ignore(&'static str),
    /// NXDOMAIN, or NOERROR with an empty answer: `[UNAVAILABLE]`.
    NotFound,
    /// SERVFAIL, NOTIMP, REFUSED, or a truncated answer (no TCP fallback):
    /// `[TEMPUNAVAIL]`.
    Failed(&'static str),
    /// A PTR answer: the host name, without the root's trailing dot.
    Name { name: Name, ttl: u32 },
    /// An A or AAAA answer: every address of the asked type in the answer
    /// section (a recursive server puts a CNAME chain's targets there too).
    Addrs { addrs: Vec<IpAddr>, ttl: u32 },
}

/// Reads `bytes` as the answer to the query `id` asked about `question`.
pub fn read_reply(bytes: &[u8], id: u16, question: &Question) -> Reply {
    let Ok(message) = Message::from_vec(bytes) else {
        return Reply::Ignore("malformed DNS response");
    };
    let meta = &message.metadata;
    if meta.id != id {
        return Reply::Ignore("wrong id in DNS response");
    }
    if meta.message_type != MessageType::Response || meta.op_code != OpCode::Query {
        return Reply::Ignore("not a response to a standard query");
    }
    let (name, rtype) = question.wire();
    match message.queries.as_slice() {
        [q] if q.query_type() == rtype && q.query_class() == DNSClass::IN && *q.name() == name => {}
        _ => return Reply::Ignore("DNS response to another question"),
    }
    match meta.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Reply::NotFound,
        ResponseCode::ServFail => return Reply::Failed("server failure"),
        ResponseCode::NotImp => return Reply::Failed("operation not implemented"),
        ResponseCode::Refused => return Reply::Failed("query refused"),
        // nginx drops FORMERR and codes past REFUSED and waits on.
        _ => return Reply::Ignore("DNS error response"),
    }
    if meta.truncation {
        return Reply::Failed("truncated DNS response");
    }
    if message.answers.is_empty() {
        return Reply::NotFound;
    }
    let answers = message.answers.iter().filter(|r| r.dns_class == DNSClass::IN);
    match question {
        Question::Ptr(_) => {
            // The first PTR, whatever CNAMEs come before it (RFC 2317
            // delegation answers with a CNAME then the PTR).
            for record in answers {
                if let RData::PTR(ptr) = &record.data {
                    return Reply::Name {
                        name: ptr.0.clone(),
                        ttl: record.ttl,
                    };
                }
            }
            Reply::Ignore("no PTR type in DNS response")
        }
        Question::Addrs(..) => {
            let mut ttl = u32::MAX;
            let mut addrs = Vec::new();
            for record in answers {
                let addr = match (&record.data, rtype) {
                    (RData::A(a), RecordType::A) => IpAddr::V4(a.0),
                    (RData::AAAA(a), RecordType::AAAA) => IpAddr::V6(a.0),
                    _ => continue,
                };
                ttl = ttl.min(record.ttl);
                addrs.push(addr);
            }
            if addrs.is_empty() {
                // A CNAME whose target the server did not resolve: nginx
                // would ask again for the target; Postern takes the name
                // as unconfirmed.
                return Reply::NotFound;
            }
            Reply::Addrs { addrs, ttl }
        }
    }
}

/// The name as it goes into `Client-Host` and XCLIENT `NAME=`: letters,
/// digits, `-` and `_` in each label, joined by dots, no trailing dot.
/// `None` for anything else: a PTR's labels are arbitrary bytes, and a CR
/// or LF in them would start a new header line.
pub fn host_text(name: &Name) -> Option<String> {
    if name.num_labels() == 0 {
        return None;
    }
    let mut text = String::new();
    for label in name.iter() {
        if label.is_empty()
            || !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        {
            return None;
        }
        if !text.is_empty() {
            text.push('.');
        }
        text.extend(label.iter().map(|&b| char::from(b)));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR};
    use hickory_proto::rr::Record;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn localhost() -> Question {
        Question::Ptr("127.0.0.1".parse().unwrap())
    }

    /// An answer to `question` with id `id`, rcode and answer records.
    fn answer(id: u16, question: &Question, code: ResponseCode, records: Vec<Record>) -> Vec<u8> {
        let (qname, rtype) = question.wire();
        let mut m = Message::response(id, OpCode::Query);
        m.metadata.response_code = code;
        m.add_query(Query::query(qname, rtype));
        m.add_answers(records);
        m.to_vec().unwrap()
    }

    #[test]
    fn queries_carry_id_question_and_recursion() {
        let bytes = query(0x1234, &localhost()).unwrap();
        assert_eq!(
            &bytes[..4],
            &[0x12, 0x34, 0x01, 0x00],
            "id, then RD set and nothing else"
        );
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.queries[0].name().to_ascii(), "1.0.0.127.in-addr.arpa.");
        assert_eq!(m.queries[0].query_type(), RecordType::PTR);
        let v6 = query(1, &Question::Ptr("2001:db8::1".parse().unwrap())).unwrap();
        let m = Message::from_vec(&v6).unwrap();
        assert_eq!(
            m.queries[0].name().to_ascii(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        let a = query(2, &Question::Addrs(name("a.example.net."), AddrType::Aaaa)).unwrap();
        let m = Message::from_vec(&a).unwrap();
        assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
    }

    #[test]
    fn replies_sorted_as_nginx_does() {
        let q = localhost();
        let arpa = name("1.0.0.127.in-addr.arpa.");
        let ptr = |target: &str, ttl| Record::from_rdata(arpa.clone(), ttl, RData::PTR(PTR(name(target))));
        let cname = Record::from_rdata(arpa.clone(), 60, RData::CNAME(CNAME(name("1.1.0.0.127.in-addr.arpa."))));
        let rows: Vec<(Vec<u8>, Reply)> = vec![
            (
                answer(7, &q, ResponseCode::NoError, vec![ptr("a.example.net.", 3600)]),
                Reply::Name {
                    name: name("a.example.net."),
                    ttl: 3600,
                },
            ),
            (
                answer(
                    7,
                    &q,
                    ResponseCode::NoError,
                    vec![cname.clone(), ptr("b.example.net.", 5)],
                ),
                Reply::Name {
                    name: name("b.example.net."),
                    ttl: 5,
                },
            ),
            (
                answer(7, &q, ResponseCode::NoError, vec![cname]),
                Reply::Ignore("no PTR type in DNS response"),
            ),
            (
                answer(8, &q, ResponseCode::NoError, vec![ptr("evil.example.", 1)]),
                Reply::Ignore("wrong id in DNS response"),
            ),
            (
                answer(
                    7,
                    &Question::Ptr("127.0.0.2".parse().unwrap()),
                    ResponseCode::NoError,
                    vec![],
                ),
                Reply::Ignore("DNS response to another question"),
            ),
            (answer(7, &q, ResponseCode::NXDomain, vec![]), Reply::NotFound),
            (answer(7, &q, ResponseCode::NoError, vec![]), Reply::NotFound),
            (
                answer(7, &q, ResponseCode::ServFail, vec![]),
                Reply::Failed("server failure"),
            ),
            (
                answer(7, &q, ResponseCode::Refused, vec![]),
                Reply::Failed("query refused"),
            ),
            (
                answer(7, &q, ResponseCode::FormErr, vec![]),
                Reply::Ignore("DNS error response"),
            ),
            (b"\x00\x07\x81".to_vec(), Reply::Ignore("malformed DNS response")),
            (
                query(7, &q).unwrap(),
                Reply::Ignore("not a response to a standard query"),
            ),
        ];
        for (i, (bytes, want)) in rows.into_iter().enumerate() {
            assert_eq!(read_reply(&bytes, 7, &q), want, "row {i}");
        }
    }

    #[test]
    fn zero_length_ptr_is_not_an_answer() {
        // mail_resolver.t's "PTR empty": RDATA of length 0.
        let q = localhost();
        let mut bytes = answer(9, &q, ResponseCode::NoError, vec![]);
        bytes[7] = 1; // one answer
        bytes.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0x0e, 0x10, 0, 0]);
        assert!(matches!(read_reply(&bytes, 9, &q), Reply::Ignore(_)));
    }

    #[test]
    fn uncompressed_ptr_answer() {
        // mail_resolver.t's "uncompressed PTR": the owner name written out.
        let q = localhost();
        let mut bytes = answer(3, &q, ResponseCode::NoError, vec![]);
        bytes[7] = 1;
        for label in ["1", "0", "0", "127", "in-addr", "arpa"] {
            bytes.push(label.len() as u8);
            bytes.extend_from_slice(label.as_bytes());
        }
        bytes.extend_from_slice(&[0, 0, 12, 0, 1, 0, 0, 0, 60, 0, 15]);
        bytes.extend_from_slice(b"\x01a\x07example\x03net\x00");
        assert_eq!(
            read_reply(&bytes, 3, &q),
            Reply::Name {
                name: name("a.example.net."),
                ttl: 60
            }
        );
    }

    #[test]
    fn address_answers_keep_the_asked_type_and_the_least_ttl() {
        let target = name("a.example.net.");
        let q = Question::Addrs(target.clone(), AddrType::A);
        let records = vec![
            Record::from_rdata(target.clone(), 300, RData::CNAME(CNAME(name("b.example.net.")))),
            Record::from_rdata(name("b.example.net."), 120, RData::A(A::new(127, 0, 0, 1))),
            Record::from_rdata(name("b.example.net."), 200, RData::A(A::new(10, 0, 0, 1))),
        ];
        assert_eq!(
            read_reply(&answer(5, &q, ResponseCode::NoError, records), 5, &q),
            Reply::Addrs {
                addrs: vec!["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()],
                ttl: 120
            }
        );
        let q6 = Question::Addrs(target.clone(), AddrType::Aaaa);
        let records = vec![Record::from_rdata(
            target.clone(),
            30,
            RData::AAAA(AAAA(std::net::Ipv6Addr::LOCALHOST)),
        )];
        assert_eq!(
            read_reply(&answer(5, &q6, ResponseCode::NoError, records), 5, &q6),
            Reply::Addrs {
                addrs: vec!["::1".parse().unwrap()],
                ttl: 30
            }
        );
        let only_cname = vec![Record::from_rdata(
            target,
            300,
            RData::CNAME(CNAME(name("b.example.net."))),
        )];
        assert_eq!(
            read_reply(&answer(5, &q, ResponseCode::NoError, only_cname), 5, &q),
            Reply::NotFound
        );
    }

    #[test]
    fn host_names_fit_for_a_header() {
        assert_eq!(host_text(&name("a.example.net.")).as_deref(), Some("a.example.net"));
        assert_eq!(
            host_text(&name("mx_1.Example-2.org")).as_deref(),
            Some("mx_1.Example-2.org")
        );
        assert_eq!(host_text(&Name::root()), None);
        let evil = Name::from_labels(vec![&b"a\r\nAuth-Status: OK"[..], b"example"]).unwrap();
        assert_eq!(host_text(&evil), None);
        let space = Name::from_labels(vec![&b"a b"[..], b"example"]).unwrap();
        assert_eq!(host_text(&space), None);
    }
}
