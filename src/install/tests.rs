use super::*;

#[test]
fn package_refs() {
    let r = PackageRef::parse("myorg/hello@1.2.0").unwrap();
    assert_eq!(
        (r.org.as_str(), r.package.as_str(), r.version.as_deref()),
        ("myorg", "hello", Some("1.2.0"))
    );
    assert_eq!(r.to_string(), "myorg/hello@1.2.0");
    assert_eq!(PackageRef::parse("myorg/hello").unwrap().version, None);
    assert!(PackageRef::parse("myorg/hello@").is_err());
    assert!(PackageRef::parse("hello").is_err());
    assert!(PackageRef::parse("myorg/../x").is_err());
}
